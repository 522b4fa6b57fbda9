// 审计: the data-use (lookup) audit records by data subject, department, dataset, purpose and date,
// page by page; the verification of the hash chain; and the checkpoints published of it. The
// subject's number is sent in the search's body, never in a URL, and only its keyed hash is
// looked for.
import { useState } from 'react'
import { Button, Card, Form, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { DateField, SelectField, TextField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'

const t = zh.audit

type Record_ = Schemas['sharing.AuditRecordOut']
type Filter = Schemas['sharing.AuditFilterIn']
type SubjectKind = NonNullable<Schemas['sharing.AuditSubjectIn']['kind']>
type Report = Schemas['sharing.ChainReportOut']
type Checkpoint = Schemas['sharing.CheckpointOut']

const PAGE_SIZE = 20
const SUBJECT_KINDS: readonly SubjectKind[] = ['person', 'company']

type Fields = {
  kind: SubjectKind
  number: string
  department: string
  dataset: string
  itemCode: string
  applicationId: string
  since: string
  until: string
}

const EMPTY: Fields = {
  kind: 'person',
  number: '',
  department: '',
  dataset: '',
  itemCode: '',
  applicationId: '',
  since: '',
  until: '',
}

/** Dates are China dates: a day runs from its midnight in Beijing to the next. */
function chinaMidnight(day: string): string {
  return `${day}T00:00:00+08:00`
}

function dayAfter(day: string): string {
  const date = new Date(`${day}T00:00:00Z`)
  date.setUTCDate(date.getUTCDate() + 1)
  return date.toISOString().slice(0, 10)
}

function filterOf(fields: Fields): Filter {
  const filter: Filter = { limit: PAGE_SIZE }
  const number = fields.number.trim().toUpperCase()
  if (number) filter.subject = { kind: fields.kind, id_number: number }
  if (fields.department.trim()) filter.department = fields.department.trim()
  if (fields.dataset.trim()) filter.dataset = fields.dataset.trim()
  if (fields.itemCode.trim()) filter.item_code = fields.itemCode.trim()
  if (fields.applicationId.trim()) filter.application_id = fields.applicationId.trim()
  if (fields.since) filter.since = chinaMidnight(fields.since)
  if (fields.until) filter.until = chinaMidnight(dayAfter(fields.until))
  return filter
}

function who(record: Record_): string {
  if (!record.actor_subject) return t.byService(record.consumer)
  const role = record.actor_role ? t.roles[record.actor_role] ?? record.actor_role : ''
  // The applicant looking at their own data has no department: their role says who they are.
  if (!record.actor_department) return t.byApplicant(role, record.actor_subject)
  return t.byPerson(record.actor_department, role, record.actor_subject)
}

const recordColumns: PrimaryTableCol<Record_>[] = [
  { colKey: 'seq', title: t.columns.seq },
  { colKey: 'at', title: t.columns.at, cell: ({ row }) => formatDateTime(row.at) },
  { colKey: 'requested_by', title: t.columns.by, cell: ({ row }) => who(row) },
  { colKey: 'subject_masked', title: t.columns.subject },
  {
    colKey: 'dataset_code',
    title: t.columns.dataset,
    cell: ({ row }) => (
      <>
        {row.dataset_code}
        {row.fields.length ? <div className="muted">{row.fields.join(zh.app.listSeparator)}</div> : null}
      </>
    ),
  },
  {
    colKey: 'item_code',
    title: t.columns.purpose,
    cell: ({ row }) => (
      <>
        {row.item_code}
        {row.application_id ? <div className="muted">{t.application(row.application_id)}</div> : null}
      </>
    ),
  },
  {
    colKey: 'outcome',
    title: t.columns.outcome,
    cell: ({ row }) => (
      <>
        {t.outcomes[row.outcome] ?? row.outcome}
        {row.reason ? <div className="muted">{row.reason}</div> : null}
      </>
    ),
  },
]

const checkpointColumns: PrimaryTableCol<Checkpoint>[] = [
  { colKey: 'seq', title: t.checkpointColumns.seq },
  { colKey: 'at', title: t.checkpointColumns.at, cell: ({ row }) => formatDateTime(row.at) },
  { colKey: 'kid', title: t.checkpointColumns.kid },
  {
    colKey: 'published_at',
    title: t.checkpointColumns.publishedAt,
    cell: ({ row }) => (row.published_at ? formatDateTime(row.published_at) : t.notPublishedYet),
  },
  {
    colKey: 'signature_valid',
    title: t.checkpointColumns.signature,
    cell: ({ row }) => (row.signature_valid ? t.valid : t.invalid),
  },
  {
    colKey: 'in_chain',
    title: t.checkpointColumns.inChain,
    cell: ({ row }) => (row.in_chain ? t.consistent : t.inconsistent),
  },
]

function Records() {
  const [fields, setFields] = useState<Fields>(EMPTY)
  const [numberError, setNumberError] = useState<string | null>(null)
  const [applied, setApplied] = useState<Filter>({ limit: PAGE_SIZE })
  const [before, setBefore] = useState<number | null>(null)
  const { data, loading, problem } = useAnswer(
    () =>
      attempt(() =>
        api.POST('/api/v1/staff/audit/search', { body: before === null ? applied : { ...applied, before } })
      ),
    [applied, before]
  )
  const rows: Record_[] = data?.items ?? []
  const next = data?.next_before ?? null

  function set<K extends keyof Fields>(key: K) {
    return (value: Fields[K]) => setFields((current) => ({ ...current, [key]: value }))
  }

  function search() {
    const number = fields.number.trim()
    if (number && number.length !== 18) {
      setNumberError(t.subjectLength)
      return
    }
    setNumberError(null)
    setBefore(null)
    setApplied(filterOf(fields))
  }

  return (
    <Card className="panel" title={<h2 className="section-title">{t.recordsTitle}</h2>}>
      <Form labelAlign="top" colon={false} onSubmit={search} aria-label={t.filters}>
        <div className="audit-filters">
          <SelectField
            label={t.subjectKind}
            name="subject_kind"
            value={fields.kind}
            onChange={(value) => set('kind')(SUBJECT_KINDS.find((k) => k === value) ?? 'person')}
            choices={SUBJECT_KINDS.map((value) => ({ value, label: t.subjectKinds[value] }))}
          />
          <TextField
            label={t.subjectNumber}
            name="subject_number"
            value={fields.number}
            onChange={set('number')}
            maxLength={18}
            autoComplete="off"
            hint={t.subjectHint}
            error={numberError}
          />
          <TextField label={t.department} name="department" value={fields.department} onChange={set('department')} maxLength={100} />
          <TextField label={t.dataset} name="dataset" value={fields.dataset} onChange={set('dataset')} maxLength={64} />
          <TextField label={t.itemCode} name="item_code" value={fields.itemCode} onChange={set('itemCode')} maxLength={64} />
          <TextField
            label={t.applicationId}
            name="application_id"
            value={fields.applicationId}
            onChange={set('applicationId')}
            maxLength={64}
          />
          <DateField label={t.since} name="since" value={fields.since} onChange={set('since')} />
          <DateField label={t.until} name="until" value={fields.until} onChange={set('until')} />
        </div>
        <Space>
          <Button type="submit" theme="primary">
            {t.search}
          </Button>
          <Button
            theme="default"
            variant="outline"
            onClick={() => {
              setFields(EMPTY)
              setNumberError(null)
              setBefore(null)
              setApplied({ limit: PAGE_SIZE })
            }}
          >
            {t.reset}
          </Button>
        </Space>
      </Form>
      <ProblemAlert problem={problem} />
      <p className="muted" role="status">
        {loading ? zh.app.loading : t.shown(rows.length)}
      </p>
      <Table<Record_>
        className="audit-records"
        rowKey="seq"
        data={rows}
        columns={recordColumns}
        loading={loading}
        empty={t.empty}
        tableLayout="auto"
      />
      {/* Offered only when there is somewhere to go (a disabled button is neither usable nor legible). */}
      <Space className="audit-pager">
        {before !== null ? (
          <Button theme="default" variant="outline" onClick={() => setBefore(null)}>
            {t.firstPage}
          </Button>
        ) : null}
        {next !== null ? (
          <Button theme="default" variant="outline" onClick={() => setBefore(next)}>
            {t.nextPage}
          </Button>
        ) : null}
      </Space>
    </Card>
  )
}

function Verification() {
  const [report, setReport] = useState<Report | null>(null)
  const [busy, setBusy] = useState(false)
  const [problem, setProblem] = useState<string | null>(null)

  async function verify() {
    setBusy(true)
    setReport(null)
    const { data, problem } = await attempt(() => api.GET('/api/v1/staff/audit/verify'))
    setBusy(false)
    setReport(data ?? null)
    setProblem(data ? null : problem ?? null)
  }

  return (
    <Card className="panel" title={<h2 className="section-title">{t.verifyTitle}</h2>}>
      <p className="muted">{t.verifyHint}</p>
      <Button theme="primary" loading={busy} onClick={() => void verify()}>
        {t.verify}
      </Button>
      <ProblemAlert problem={problem} />
      <div role="status" className="audit-verdict">
        {report ? (
          report.ok ? (
            <>
              <p className="audit-intact">{t.intact(report.records)}</p>
              <p className="muted">
                {report.checkpoint_seq === null || report.checkpoint_seq === undefined
                  ? t.noCheckpoint
                  : t.againstCheckpoint(report.checkpoint_seq)}
              </p>
            </>
          ) : (
            <>
              <p className="audit-broken">{t.broken(report.first_bad_seq)}</p>
              <ul>
                {report.problems.map((text, i) => (
                  <li key={`${i}-${text}`}>{text}</li>
                ))}
              </ul>
            </>
          )
        ) : null}
      </div>
    </Card>
  )
}

function Checkpoints() {
  const { data: rows = [], loading, problem, reload: load } = useAnswer(
    () => attempt(() => api.GET('/api/v1/staff/audit/checkpoints')),
    []
  )

  return (
    <Card className="panel" title={<h2 className="section-title">{t.checkpointsTitle}</h2>}>
      <p className="muted">{t.checkpointsHint}</p>
      <div className="toolbar">
        <Button theme="default" variant="outline" onClick={() => void load()}>
          {zh.app.refresh}
        </Button>
      </div>
      <ProblemAlert problem={problem} />
      <Table<Checkpoint>
        rowKey="seq"
        data={rows}
        columns={checkpointColumns}
        loading={loading}
        empty={t.checkpointsEmpty}
        tableLayout="auto"
      />
    </Card>
  )
}

export function AuditPage() {
  usePageTitle(t.title)
  const { can } = useAuth()
  return (
    <section aria-labelledby="audit-title">
      <PageHead id="audit-title" title={t.title} />
      {can('POST /api/v1/staff/audit/search') ? <Records /> : null}
      {can('GET /api/v1/staff/audit/verify') ? <Verification /> : null}
      {can('GET /api/v1/staff/audit/checkpoints') ? <Checkpoints /> : null}
    </section>
  )
}
