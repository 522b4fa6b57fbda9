// 审批: my department's queue, with the working-day deadline, and 认领.
import { useState } from 'react'
import { Link } from 'react-router-dom'
import { Button, Card, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { DeadlineLight, formatDate, formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { assigneeText } from './assignee'

type CaseSummary = Schemas['approval.CaseSummary']
type Row = CaseSummary & { item_name: string }

// A case names its item by code only; the name comes from the item's public guide, read once per
// code. A code whose guide cannot be read is shown as the code.
const itemNames = new Map<string, Promise<string>>()

function itemName(code: string): Promise<string> {
  let name = itemNames.get(code)
  if (!name) {
    name = attempt(() => api.GET('/api/v1/items/{code}', { params: { path: { code } } })).then(({ data }) => {
      if (!data) itemNames.delete(code)
      return data?.content.name ?? code
    })
    itemNames.set(code, name)
  }
  return name
}

async function withItemNames(rows: CaseSummary[]): Promise<Row[]> {
  const codes = [...new Set(rows.map((row) => row.item_code))]
  const names = new Map(await Promise.all(codes.map(async (code) => [code, await itemName(code)] as const)))
  return rows.map((row) => ({ ...row, item_name: names.get(row.item_code) ?? row.item_code }))
}

export function QueuePage() {
  usePageTitle(zh.review.title)
  const { can, state } = useAuth()
  const me = state.status === 'ready' ? state : null
  const [notice, setNotice] = useState<string | null>(null)
  const [busy, setBusy] = useState<string | null>(null)

  const { data: rows = [], loading, problem, setProblem, reload: load } = useAnswer(async () => {
    const { data, problem } = await attempt(() => api.GET('/api/v1/staff/cases/queue'))
    // Rows appear with their item names, so a row's names do not change once shown.
    return data ? { data: await withItemNames(data) } : { problem }
  }, [])

  async function claim(row: Row) {
    if (busy) return
    setBusy(row.application_id)
    setNotice(null)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/cases/{id}/claim', { params: { path: { id: row.application_id } } })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setNotice(zh.review.claimed)
    void load()
  }

  const columns: PrimaryTableCol<Row>[] = [
    { colKey: 'application_id', title: zh.review.columns.number },
    { colKey: 'item_name', title: zh.review.itemName },
    { colKey: 'item_code', title: zh.review.columns.item },
    { colKey: 'step', title: zh.review.columns.step },
    { colKey: 'assignee', title: zh.review.columns.assignee, cell: ({ row }) => assigneeText(row.assignee, me) },
    { colKey: 'submitted_at', title: zh.review.columns.submittedAt, cell: ({ row }) => formatDateTime(row.submitted_at) },
    {
      colKey: 'due_date',
      title: zh.review.columns.deadline,
      cell: ({ row }) => (
        <>
          {formatDate(row.due_date)}
          {row.due_provisional ? zh.review.provisional : null}
          <div>
            <DeadlineLight light={row.deadline_light} daysLeft={row.working_days_left} />
          </div>
          {row.stopped_days > 0 ? <div className="muted">{zh.review.stoppedDays(row.stopped_days)}</div> : null}
        </>
      ),
    },
    {
      colKey: 'actions',
      title: zh.review.columns.actions,
      cell: ({ row }) => (
        <Space size="small" breakLine>
          {can('GET /api/v1/staff/cases/{id}') ? (
            <Link
              to={`/review/cases/${encodeURIComponent(row.application_id)}`}
              aria-label={zh.review.openCase(row.item_name, row.application_id)}
            >
              {zh.review.open}
            </Link>
          ) : null}
          {row.assignee === null && can('POST /api/v1/staff/cases/{id}/claim') ? (
            <Button size="small" theme="primary" loading={busy === row.application_id} onClick={() => void claim(row)}>
              {zh.review.claim}
            </Button>
          ) : null}
        </Space>
      ),
    },
  ]

  return (
    <section aria-labelledby="review-title">
      <PageHead id="review-title" title={zh.review.title}>
        <Button theme="default" variant="outline" onClick={() => void load()}>
          {zh.app.refresh}
        </Button>
      </PageHead>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      <Card className="panel" title={<h2 className="section-title">{zh.review.queueTitle}</h2>}>
        <Table<Row>
          rowKey="application_id"
          data={rows}
          columns={columns}
          loading={loading}
          empty={zh.review.empty}
          tableLayout="auto"
        />
      </Card>
    </section>
  )
}

