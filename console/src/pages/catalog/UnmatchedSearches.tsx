// 未找到结果的搜索: what citizens searched for and the catalogue could not answer, most searched
// first, over a chosen window. Every catalogue member reads it (a search is no department's and
// carries no personal data); an admin marks a query handled once a synonym or keyword covers it,
// and it comes back only if citizens search for it in vain again.
import { useState } from 'react'
import { Button, Card, Form, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { SelectField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'

type Row = Schemas['catalog.UnmatchedQueryOut']

const t = zh.catalog
const u = t.unmatched
const PAGE_SIZE = 50
const WINDOWS = [
  { value: '7', label: u.windows.week },
  { value: '30', label: u.windows.month },
  { value: '90', label: u.windows.quarter },
  { value: '365', label: u.windows.year },
] as const

export function UnmatchedSearchesPage() {
  usePageTitle(u.title)
  const { can } = useAuth()
  const [days, setDays] = useState('30')
  const [withHandled, setWithHandled] = useState('')
  const [page, setPage] = useState(1)
  const [busy, setBusy] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const { data, loading, problem, setProblem, reload } = useAnswer(
    () =>
      attempt(() =>
        api.GET('/api/v1/staff/catalog/unmatched-searches', {
          params: { query: { days: Number(days), include_handled: withHandled === 'yes', page, page_size: PAGE_SIZE } },
        })
      ),
    [days, withHandled, page]
  )
  const rows = data?.items ?? []
  const total = data?.total ?? 0
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
  const handles = can('POST /api/v1/staff/catalog/unmatched-searches/handled')

  async function markHandled(query: string) {
    if (busy) return
    setBusy(query)
    const answer = await attempt(() => api.POST('/api/v1/staff/catalog/unmatched-searches/handled', { body: { query } }))
    setBusy(null)
    if (!answer.data) {
      setProblem(answer.problem ?? null)
      return
    }
    setProblem(null)
    setNotice(u.marked(query))
    await reload()
  }

  const columns: PrimaryTableCol<Row>[] = [
    { colKey: 'query', title: u.columns.query },
    { colKey: 'count', title: u.columns.count },
    { colKey: 'last_seen', title: u.columns.lastSeen, cell: ({ row }) => formatDateTime(row.last_seen) },
    { colKey: 'first_seen', title: u.columns.firstSeen, cell: ({ row }) => formatDateTime(row.first_seen) },
    {
      colKey: 'handled_at',
      title: u.columns.handled,
      cell: ({ row }) => (row.handled_at ? u.handledBy(row.handled_by ?? '', formatDateTime(row.handled_at)) : '—'),
    },
    ...(handles
      ? [
          {
            colKey: 'actions',
            title: u.columns.actions,
            cell: ({ row }: { row: Row }) => (
              <Button
                theme="primary"
                variant="outline"
                size="small"
                loading={busy === row.query}
                aria-label={u.markLabel(row.query)}
                onClick={() => void markHandled(row.query)}
              >
                {u.mark}
              </Button>
            ),
          },
        ]
      : []),
  ]

  return (
    <section aria-labelledby="unmatched-title">
      <PageHead id="unmatched-title" title={u.title} />
      <p className="muted">{u.intro}</p>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      <Card className="panel">
        <Form layout="inline" labelAlign="top" colon={false} className="filters">
          <SelectField
            label={u.window}
            name="days"
            value={days}
            onChange={(value) => {
              setPage(1)
              setDays(value)
            }}
            choices={WINDOWS}
          />
          <SelectField
            label={u.show}
            name="handled"
            value={withHandled}
            onChange={(value) => {
              setPage(1)
              setWithHandled(value)
            }}
            choices={[{ value: 'yes', label: u.withHandled }]}
            placeholder={u.openOnly}
          />
        </Form>
      </Card>
      <Card className="panel" title={<h2 className="section-title">{u.caption}</h2>}>
        <Table<Row> rowKey="query" data={rows} columns={columns} loading={loading} empty={u.empty} tableLayout="auto" />
        <div className="pager">
          <span>{u.total(total)}</span>
          <span>{t.list.pageOf(page, pages)}</span>
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
