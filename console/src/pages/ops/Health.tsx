// 运维 · 服务状态: every service as the gateway found it just now (its database, the broker, each
// consumer's backlog per partition, the events waiting in its outbox, its dead letters).
import { Link } from 'react-router-dom'
import { Button, Card, Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { serviceName } from './names'

type Health = Schemas['ServiceHealth']

const t = zh.ops.health

const STATE_THEMES: Record<string, 'success' | 'warning' | 'danger'> = {
  up: 'success',
  degraded: 'warning',
  unreachable: 'danger',
}

function StateCell({ row }: { row: Health }) {
  return (
    <span data-field="state" data-state={row.state}>
      <Tag theme={STATE_THEMES[row.state] ?? 'default'} variant="light">
        {t.states[row.state] ?? row.state}
      </Tag>
      {row.unreachable ? <div className="muted">{t.unreachable[row.unreachable] ?? row.unreachable}</div> : null}
    </span>
  )
}

function DatabaseCell({ row }: { row: Health }) {
  const database = row.status?.database
  if (!database) return <>—</>
  return (
    <span data-field="database">
      {t.database[database.state] ?? database.state}
      {database.revision ? <div className="muted">{t.revision(database.revision)}</div> : null}
    </span>
  )
}

function BrokerCell({ row }: { row: Health }) {
  if (!row.status) return <>—</>
  const broker = row.status.broker
  if (!broker) return <span data-field="broker">{t.noBroker}</span>
  return (
    <span data-field="broker">
      {t.broker[broker.state] ?? broker.state}
      {broker.checked_at ? <div className="muted">{formatDateTime(broker.checked_at)}</div> : null}
    </span>
  )
}

function ConsumersCell({ row }: { row: Health }) {
  const consumers = row.status?.consumers
  if (!consumers) return <>—</>
  if (consumers.length === 0) return <span data-field="consumers">{t.noConsumers}</span>
  return (
    <ul className="ops-consumers" data-field="consumers">
      {consumers.map((consumer) => (
        <li key={consumer.group}>
          <span data-consumer={consumer.group} data-lag={consumer.lag}>
            {t.consumer(consumer.group, consumer.lag)}
          </span>{' '}
          <span className="muted">
            {!consumer.assigned ? t.unassigned : consumer.caught_up ? t.caughtUp : t.catchingUp}
          </span>
          {consumer.partitions.length ? (
            // Partitions behind are listed at once; all of them (a dozen per consumer) on request.
            <>
              {consumer.lag > 0 ? (
                <ul className="ops-partitions" aria-label={t.behindOf(consumer.group)}>
                  {consumer.partitions
                    .filter((p) => p.lag > 0)
                    .map((p) => (
                      <li key={`${p.topic}#${p.partition}`}>{t.partition(p.topic, p.partition, p.lag)}</li>
                    ))}
                </ul>
              ) : null}
              <details className="ops-details">
                <summary>{t.allPartitions(consumer.partitions.length)}</summary>
                <ul className="ops-partitions" aria-label={t.partitionsOf(consumer.group)}>
                  {consumer.partitions.map((p) => (
                    <li key={`${p.topic}#${p.partition}`}>{t.partition(p.topic, p.partition, p.lag)}</li>
                  ))}
                </ul>
              </details>
            </>
          ) : null}
        </li>
      ))}
    </ul>
  )
}

export function HealthPage() {
  usePageTitle(t.title)
  const { can } = useAuth()
  const { data, loading, problem, reload: load } = useAnswer(async () => {
    const { data, problem } = await attempt(() => api.GET('/api/v1/staff/ops/status'))
    // When the gateway answered, not when it was asked.
    return data ? { data: { rows: data.services, checkedAt: new Date().toISOString() } } : { problem }
  }, [])
  const rows: Health[] = data?.rows ?? []
  const checkedAt = data?.checkedAt ?? null

  const mayListDeadLetters = can('GET /api/v1/staff/ops/dead-letters/{service}')
  const columns: PrimaryTableCol<Health>[] = [
    {
      colKey: 'service',
      title: t.columns.service,
      cell: ({ row }) => <span data-field="service">{serviceName(row.service)}</span>,
    },
    { colKey: 'state', title: t.columns.state, cell: ({ row }) => <StateCell row={row} /> },
    { colKey: 'database', title: t.columns.database, cell: ({ row }) => <DatabaseCell row={row} /> },
    { colKey: 'broker', title: t.columns.broker, cell: ({ row }) => <BrokerCell row={row} /> },
    { colKey: 'consumers', title: t.columns.consumers, cell: ({ row }) => <ConsumersCell row={row} /> },
    {
      colKey: 'outbox',
      title: t.columns.outbox,
      cell: ({ row }) => <span data-field="outbox">{row.status?.outbox_backlog ?? t.noOutbox}</span>,
    },
    {
      colKey: 'dead_letters',
      title: t.columns.deadLetters,
      cell: ({ row }) => {
        const count = row.status?.dead_letters
        if (count === null || count === undefined) return <span data-field="dead-letters">{t.noOutbox}</span>
        return (
          <span data-field="dead-letters" data-count={count}>
            {count > 0 && mayListDeadLetters ? (
              <Link
                to={`/ops/dead-letters?service=${encodeURIComponent(row.service)}`}
                aria-label={t.viewDeadLetters(count, serviceName(row.service))}
              >
                {count}
              </Link>
            ) : (
              count
            )}
          </span>
        )
      },
    },
  ]

  return (
    <section aria-labelledby="ops-health-title">
      <PageHead id="ops-health-title" title={t.title}>
        <Button theme="default" variant="outline" loading={loading} onClick={() => void load()}>
          {zh.app.refresh}
        </Button>
      </PageHead>
      <ProblemAlert problem={problem} />
      <Card
        className="panel"
        title={<h2 className="section-title">{t.caption}</h2>}
        actions={checkedAt ? <span className="muted">{t.checkedAt(formatDateTime(checkedAt))}</span> : undefined}
      >
        <Table<Health>
          rowKey="service"
          data={rows}
          columns={columns}
          loading={loading}
          empty={t.empty}
          tableLayout="auto"
          rowAttributes={({ row }) => ({ 'data-service': row.service })}
        />
      </Card>
    </section>
  )
}
