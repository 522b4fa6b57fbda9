// 运维 · 死信: one service's dead letters (events its consumers gave up on), and 重放 after a
// confirmation: the event goes back on its topic under its original id.
import { useState } from 'react'
import { useSearchParams } from 'react-router-dom'
import { Button, Card, Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { ActionDialog, DialogButtons } from '../../components/ActionDialog'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { CheckboxField, FilterBar, SelectField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { EVENT_SERVICES, isEventService, serviceName, type EventService } from './names'

type DeadLetter = Schemas['catalog.DeadLetterOut']

const t = zh.ops.deadLetters
const SERVICE_CHOICES = EVENT_SERVICES.map((value) => ({ value, label: serviceName(value) }))
const ERROR_SHOWN = 120

/** The start of a long error (a validation error lists every field), the rest on request. */
function clipped(error: string): string {
  return error.length > ERROR_SHOWN ? `${error.slice(0, ERROR_SHOWN)}…` : error
}

export function DeadLettersPage() {
  usePageTitle(t.title)
  const { can } = useAuth()
  const [params, setParams] = useSearchParams()
  const chosen = params.get('service')
  const service: EventService = isEventService(chosen) ? chosen : 'intake'
  const [onlyPending, setOnlyPending] = useState(false)
  const [notice, setNotice] = useState<string | null>(null)
  const [confirming, setConfirming] = useState<DeadLetter | null>(null)
  const [busy, setBusy] = useState(false)

  const { data: rows = [], loading, problem, setProblem, reload: load } = useAnswer(async () => {
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/staff/ops/dead-letters/{service}', {
        params: { path: { service }, query: { include_replayed: !onlyPending } },
      })
    )
    return { data: data && [...data].reverse(), problem } // newest first
  }, [service, onlyPending])

  async function replay() {
    if (!confirming || busy) return
    setBusy(true)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/ops/dead-letters/{service}/{dead_letter_id}/replay', {
        params: { path: { service, dead_letter_id: confirming.id } },
      })
    )
    setBusy(false)
    const replayed = confirming
    setConfirming(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setNotice(t.done(replayed.event_id))
    void load()
  }

  const mayReplay = can('POST /api/v1/staff/ops/dead-letters/{service}/{dead_letter_id}/replay')
  const columns: PrimaryTableCol<DeadLetter>[] = [
    {
      colKey: 'event_id',
      title: t.columns.event,
      cell: ({ row }) => (
        <>
          <span data-field="event-id">{row.event_id}</span>
          <div className="muted">{t.onTopic(row.topic)}</div>
          <div className="muted">{row.event_type === 'unknown' ? t.unknownType : row.event_type}</div>
        </>
      ),
    },
    { colKey: 'consumer', title: t.columns.consumer },
    {
      colKey: 'error',
      title: t.columns.error,
      cell: ({ row }) => (
        <div className="ops-error">
          <span data-field="error">{clipped(row.error)}</span>
          {row.error.length > ERROR_SHOWN ? (
            <details className="ops-details">
              <summary>{t.fullError}</summary>
              <p className="ops-full-error">{row.error}</p>
            </details>
          ) : null}
          <div className="muted">{t.attempts(row.attempts)}</div>
        </div>
      ),
    },
    { colKey: 'created_at', title: t.columns.createdAt, cell: ({ row }) => formatDateTime(row.created_at) },
    {
      colKey: 'replayed_at',
      title: t.columns.state,
      cell: ({ row }) => (
        <span data-field="state">
          {row.replayed_at ? (
            <>
              <Tag theme="success" variant="light">
                {t.replayed}
              </Tag>
              <div className="muted">{formatDateTime(row.replayed_at)}</div>
            </>
          ) : (
            <Tag theme="warning" variant="light">
              {t.pending}
            </Tag>
          )}
        </span>
      ),
    },
    {
      colKey: 'actions',
      title: t.columns.actions,
      cell: ({ row }) =>
        !row.replayed_at && mayReplay ? (
          <Button size="small" theme="primary" aria-label={t.replayNamed(row.event_id)} onClick={() => setConfirming(row)}>
            {t.replay}
          </Button>
        ) : null,
    },
  ]

  return (
    <section aria-labelledby="ops-dead-letters-title">
      <PageHead id="ops-dead-letters-title" title={t.title} />
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      <Card className="panel" title={<h2 className="section-title">{t.listTitle(serviceName(service))}</h2>}>
        <FilterBar onSubmit={() => void load()}>
          <SelectField
            label={t.service}
            name="service"
            value={service}
            onChange={(value) => {
              setNotice(null)
              setParams({ service: value })
            }}
            choices={SERVICE_CHOICES}
          />
          <CheckboxField label={t.onlyPending} name="only-pending" value={onlyPending} onChange={setOnlyPending} />
        </FilterBar>
        <Table<DeadLetter>
          rowKey="id"
          data={rows}
          columns={columns}
          loading={loading}
          empty={t.empty}
          tableLayout="auto"
          rowAttributes={({ row }) => ({ 'data-dead-letter': row.id })}
        />
      </Card>
      <ActionDialog title={t.confirmTitle} open={confirming !== null} onClose={() => setConfirming(null)}>
        {confirming ? (
          <>
            <dl className="fields">
              <dt>{t.columns.topic}</dt>
              <dd>{confirming.topic}</dd>
              <dt>{t.columns.eventId}</dt>
              <dd>{confirming.event_id}</dd>
              <dt>{t.columns.consumer}</dt>
              <dd>{confirming.consumer}</dd>
            </dl>
            <p>{t.confirmText}</p>
            <DialogButtons
              confirm={t.confirm}
              busy={busy}
              onConfirm={() => void replay()}
              onCancel={() => setConfirming(null)}
            />
          </>
        ) : null}
      </ActionDialog>
    </section>
  )
}
