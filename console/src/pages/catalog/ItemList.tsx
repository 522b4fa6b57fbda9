// 事项: the newest version of each item of my department and region, with its status; an
// approver opens it filtered to what waits for them (待审核).
import { useState } from 'react'
import { Link } from 'react-router-dom'
import { Button, Card, Form, Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { SelectField, TextField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { StatusTag } from './parts'

type Summary = Schemas['catalog.ItemVersionSummary']
type Status = Schemas['catalog.Status']

const t = zh.catalog
const STATUS_CHOICES = Object.entries(t.statuses).map(([value, label]) => ({ value, label }))
const PAGE_SIZE = 20

function isStatus(value: string): value is Status {
  return value in t.statuses
}

export function ItemListPage() {
  usePageTitle(t.list.title)
  const { can } = useAuth()
  // An approver's first look is what waits for them.
  const approver = can('POST /api/v1/staff/catalog/item-versions/{id}/approve')
  const [status, setStatus] = useState<string>(approver ? 'submitted' : '')
  const [query, setQuery] = useState('')
  const [applied, setApplied] = useState({ status: approver ? 'submitted' : '', query: '' })
  const [page, setPage] = useState(1)
  const { data, loading, problem } = useAnswer(
    () =>
      attempt(() =>
        api.GET('/api/v1/staff/catalog/item-versions', {
          params: {
            query: {
              status: isStatus(applied.status) ? applied.status : undefined,
              q: applied.query || undefined,
              page,
              page_size: PAGE_SIZE,
            },
          },
        })
      ),
    [applied, page]
  )
  const rows = data?.items ?? []
  const total = data?.total ?? 0

  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
  const columns: PrimaryTableCol<Summary>[] = [
    { colKey: 'name', title: t.list.columns.name },
    { colKey: 'implementing_code', title: t.list.columns.code },
    { colKey: 'version', title: t.list.columns.version },
    { colKey: 'status', title: t.list.columns.status, cell: ({ row }) => <StatusTag status={row.status} /> },
    {
      colKey: 'auto_approval',
      title: t.list.columns.autoApproval,
      cell: ({ row }) =>
        row.auto_approval ? (
          <Tag theme="primary" variant="light">
            {t.list.columns.autoApproval}
          </Tag>
        ) : (
          zh.app.no
        ),
    },
    { colKey: 'created_at', title: t.list.columns.updated, cell: ({ row }) => formatDateTime(row.created_at) },
    { colKey: 'submitted_by', title: t.list.columns.submittedBy, cell: ({ row }) => row.submitted_by ?? '—' },
    {
      colKey: 'actions',
      title: t.list.columns.actions,
      cell: ({ row }) => (
        <Link to={`/catalog/versions/${encodeURIComponent(row.id)}`} aria-label={t.list.openVersion(row.name, row.version)}>
          {t.list.open}
        </Link>
      ),
    },
  ]

  return (
    <section aria-labelledby="catalog-list-title">
      <PageHead id="catalog-list-title" title={t.list.title} />
      <ProblemAlert problem={problem} />
      <Card className="panel">
        <Form
          layout="inline"
          labelAlign="top"
          colon={false}
          className="filters"
          onSubmit={() => {
            setPage(1)
            setApplied({ status, query: query.trim() })
          }}
        >
          <TextField label={t.list.search} name="q" value={query} onChange={setQuery} maxLength={50} />
          <SelectField
            label={t.list.status}
            name="status"
            value={status}
            onChange={setStatus}
            choices={STATUS_CHOICES}
            placeholder={t.list.allStatuses}
          />
          <Button type="submit" theme="primary">
            {t.list.find}
          </Button>
        </Form>
      </Card>
      <Card
        className="panel"
        title={
          <h2 className="section-title">{applied.status === 'submitted' ? t.list.waitingTitle : t.list.caption}</h2>
        }
      >
        <Table<Summary> rowKey="id" data={rows} columns={columns} loading={loading} empty={t.list.empty} tableLayout="auto" />
        <div className="pager">
          <span>{t.list.total(total)}</span>
          <span>{t.list.pageOf(page, pages)}</span>
          {/* Shown only when there is somewhere to go (TDesign's disabled look is too faint to read). */}
          {page > 1 ? (
            <Button theme="default" variant="outline" onClick={() => setPage(page - 1)}>
              {t.list.previous}
            </Button>
          ) : null}
          {page < pages ? (
            <Button theme="default" variant="outline" onClick={() => setPage(page + 1)}>
              {t.list.next}
            </Button>
          ) : null}
        </div>
      </Card>
    </section>
  )
}
