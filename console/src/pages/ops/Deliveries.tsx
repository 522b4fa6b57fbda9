// 运维 · 消息投递: the push messages notify sent (WeChat, SMS), newest first, with their failures;
// 仅失败 shows the three kinds of failure together.
import { useState } from 'react'
import { Card, Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { FilterBar, SelectField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'

type Message = Schemas['notify.MessageOut']

const t = zh.ops.deliveries
const FAILURES = ['temporary-failure', 'technical-failure', 'permanent-failure'] as const
const FAILED = 'failures'
const FILTER_CHOICES = [
  { value: FAILED, label: t.failures },
  ...Object.entries(t.statuses).map(([value, label]) => ({ value, label })),
]

function statusTheme(status: string): 'success' | 'warning' | 'danger' | 'default' {
  if (status === 'delivered') return 'success'
  if (status === 'permanent-failure') return 'danger'
  if ((FAILURES as readonly string[]).includes(status)) return 'warning'
  return 'default'
}

async function messages(status: string): Promise<{ data?: Message[]; problem?: string }> {
  if (status !== FAILED) {
    return attempt(() => api.GET('/api/v1/staff/notify/messages', { params: { query: status ? { status } : {} } }))
  }
  // The service filters by one status: the three failures are asked at once and merged.
  const answers = await Promise.all(
    FAILURES.map((failure) => attempt(() => api.GET('/api/v1/staff/notify/messages', { params: { query: { status: failure } } })))
  )
  const refused = answers.find((answer) => !answer.data)
  if (refused) return { problem: refused.problem }
  const merged = answers.flatMap((answer) => answer.data ?? [])
  merged.sort((a, b) => b.created_at.localeCompare(a.created_at))
  return { data: merged }
}

export function DeliveriesPage() {
  usePageTitle(t.title)
  const [status, setStatus] = useState('')
  const { data: rows = [], loading, problem, reload: load } = useAnswer(() => messages(status), [status])

  const columns: PrimaryTableCol<Message>[] = [
    { colKey: 'created_at', title: t.columns.createdAt, cell: ({ row }) => formatDateTime(row.created_at) },
    { colKey: 'kind', title: t.columns.kind, cell: ({ row }) => t.kinds[row.kind] ?? row.kind },
    { colKey: 'channel', title: t.columns.channel, cell: ({ row }) => t.channels[row.channel] ?? row.channel },
    { colKey: 'application_id', title: t.columns.application, cell: ({ row }) => row.application_id ?? '—' },
    {
      colKey: 'status',
      title: t.columns.status,
      cell: ({ row }) => (
        <span data-field="status" data-status={row.status}>
          <Tag theme={statusTheme(row.status)} variant="light">
            {t.statuses[row.status] ?? row.status}
          </Tag>
        </span>
      ),
    },
    { colKey: 'attempts', title: t.columns.attempts },
    {
      colKey: 'failure',
      title: t.columns.failure,
      cell: ({ row }) =>
        row.failure_code || row.failure_detail ? (
          <div className="ops-error">
            {row.failure_detail ?? ''}
            {row.failure_code ? <div className="muted">{t.failureCode(row.failure_code)}</div> : null}
          </div>
        ) : (
          '—'
        ),
    },
    { colKey: 'next_attempt_at', title: t.columns.nextAttempt, cell: ({ row }) => formatDateTime(row.next_attempt_at) },
    { colKey: 'finished_at', title: t.columns.finishedAt, cell: ({ row }) => formatDateTime(row.finished_at) },
  ]

  return (
    <section aria-labelledby="ops-deliveries-title">
      <PageHead id="ops-deliveries-title" title={t.title} />
      <ProblemAlert problem={problem} />
      <Card className="panel" title={<h2 className="section-title">{t.listTitle}</h2>}>
        <FilterBar onSubmit={() => void load()}>
          <SelectField
            label={t.filter}
            name="status"
            value={status}
            onChange={setStatus}
            choices={FILTER_CHOICES}
            placeholder={t.all}
          />
        </FilterBar>
        <Table<Message>
          rowKey="id"
          data={rows}
          columns={columns}
          loading={loading}
          empty={t.empty}
          tableLayout="auto"
          rowAttributes={({ row }) => ({ 'data-message': row.id })}
        />
      </Card>
    </section>
  )
}
