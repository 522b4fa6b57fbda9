// A case and why it was decided (or why it came to a person), and the reviewer's actions, each
// shown only when the member may call it. After an action the case is read again.
import { useCallback, useEffect, useState } from 'react'
import { useNavigate, useParams } from 'react-router-dom'
import { Button, Card, Form, Loading, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import type { Operation } from '../../auth/operations'
import { DeadlineLight, formatDate, formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { SelectField, TextAreaField } from '../../components/fields'
import { zh } from '../../i18n/zh'
import { ActionDialog, DialogButtons } from '../../components/ActionDialog'
import { asFormSchema, type FormSchema } from '../window/SchemaForm'
import { CaseMaterials } from './CaseMaterials'
import { assigneeText } from './assignee'

type Case = Schemas['approval.CaseOut']
type Decision = Schemas['approval.DecisionOut']
type Procedure = Schemas['approval.SuspendIn']['procedure']
type RuleRow = { key: string; name: string; result: string; message: string; detail: string }

const PROCEDURES = Object.keys(zh.caseDetail.procedures) as Procedure[]

type ActionKind = 'approve' | 'deny' | 'correction' | 'suspend' | 'resume' | 'advance' | 'notAccept'

const OPERATIONS: Record<ActionKind | 'claim', Operation> = {
  claim: 'POST /api/v1/staff/cases/{id}/claim',
  approve: 'POST /api/v1/staff/cases/{id}/approve',
  deny: 'POST /api/v1/staff/cases/{id}/deny',
  correction: 'POST /api/v1/staff/cases/{id}/correction',
  suspend: 'POST /api/v1/staff/cases/{id}/suspend',
  resume: 'POST /api/v1/staff/cases/{id}/resume',
  advance: 'POST /api/v1/staff/cases/{id}/advance',
  notAccept: 'POST /api/v1/staff/cases/{id}/not-accept',
}

function text(value: unknown): string {
  if (value === null || value === undefined) return '—'
  if (typeof value === 'boolean') return value ? zh.app.yes : zh.app.no
  if (Array.isArray(value)) return value.map(text).join(zh.app.listSeparator)
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

function stepNames(steps: Case['steps']): string[] {
  return steps.map((step) => (typeof step.name === 'string' ? step.name : text(step)))
}

function ruleRows(decision: Decision, index: number): RuleRow[] {
  return decision.rule_results.map((result, i) => ({
    key: `${index}-${i}`,
    name: text(result.name),
    result: text(result.result),
    message: text(result.message),
    detail: result.detail === null || result.detail === undefined ? '' : text(result.detail),
  }))
}

const ruleColumns: PrimaryTableCol<RuleRow>[] = [
  { colKey: 'name', title: zh.caseDetail.ruleName },
  { colKey: 'result', title: zh.caseDetail.ruleResult },
  {
    colKey: 'message',
    title: zh.caseDetail.ruleMessage,
    cell: ({ row }) => (
      <>
        {row.message}
        {row.detail ? <div className="muted">{row.detail}</div> : null}
      </>
    ),
  },
]

export function CaseDetailPage() {
  usePageTitle(zh.caseDetail.title)
  const { id = '' } = useParams()
  const navigate = useNavigate()
  const { can, state } = useAuth()
  const me = state.status === 'ready' ? state.me.subject : null
  const [found, setFound] = useState<Case | null>(null)
  const [formSchema, setFormSchema] = useState<FormSchema | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const [open, setOpen] = useState<ActionKind | null>(null)
  const [comment, setComment] = useState('')
  const [reason, setReason] = useState('')
  const [correctionMaterials, setCorrectionMaterials] = useState('')
  const [procedure, setProcedure] = useState<Procedure>(PROCEDURES[0])
  const [busy, setBusy] = useState(false)

  const load = useCallback(async () => {
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/staff/cases/{id}', { params: { path: { id } } })
    )
    if (data) setFound(data)
    else setProblem(problem ?? zh.caseDetail.loadFailed)
    return data
  }, [id])

  useEffect(() => {
    void load().then(async (data) => {
      if (!data) return
      // The form's field titles come from the item's public guide (the case holds the values only).
      const guide = await attempt(() =>
        api.GET('/api/v1/items/{code}', { params: { path: { code: data.item_code } } })
      )
      if (guide.data) setFormSchema(asFormSchema(guide.data.content.form_schema))
    })
  }, [load])

  async function run(kind: ActionKind | 'claim') {
    if (busy || !found) return
    const params = { path: { id: found.application_id } }
    if ((kind === 'deny' || kind === 'correction' || kind === 'notAccept') && reason.trim().length < 2) {
      setProblem(zh.caseDetail.reasonRequired)
      return
    }
    setBusy(true)
    setNotice(null)
    const call = () => {
      switch (kind) {
        case 'claim':
          return api.POST('/api/v1/staff/cases/{id}/claim', { params })
        case 'approve':
          return api.POST('/api/v1/staff/cases/{id}/approve', { params, body: { comment } })
        case 'deny':
          return api.POST('/api/v1/staff/cases/{id}/deny', { params, body: { reason: reason.trim() } })
        case 'correction':
          return api.POST('/api/v1/staff/cases/{id}/correction', {
            params,
            body: {
              reason: reason.trim(),
              materials: correctionMaterials
                .split('\n')
                .map((line) => line.trim())
                .filter(Boolean),
            },
          })
        case 'suspend':
          return api.POST('/api/v1/staff/cases/{id}/suspend', { params, body: { procedure, comment } })
        case 'resume':
          return api.POST('/api/v1/staff/cases/{id}/resume', { params })
        case 'advance':
          return api.POST('/api/v1/staff/cases/{id}/advance', { params, body: { comment } })
        case 'notAccept':
          return api.POST('/api/v1/staff/cases/{id}/not-accept', { params, body: { reason: reason.trim() } })
      }
    }
    const { data, problem } = await attempt(call)
    setBusy(false)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    // Only the dialog of the action that answered closes: a claim answering while the member
    // already opened a dialog must leave that dialog (and what they typed) alone.
    if (kind !== 'claim' && kind !== 'resume') {
      setOpen((current) => (current === kind ? null : current))
      setComment('')
      setReason('')
      setCorrectionMaterials('')
    }
    setNotice(zh.caseDetail.done(kind === 'claim' ? zh.caseDetail.claim : zh.caseDetail[kind]))
    // The action answers the case as it now is: reading it again could answer after a later
    // action's answer and put an older state back on the screen (a dialog opened meanwhile
    // would then lose its buttons).
    setFound(data)
  }

  if (!found) {
    return (
      <section aria-labelledby="case-title">
        <h1 id="case-title" className="page-title">
          {zh.caseDetail.title}
        </h1>
        <ProblemAlert problem={problem} />
        {problem ? null : <Loading text={zh.app.loading} />}
      </section>
    )
  }

  const steps = stepNames(found.steps)
  const isLastStep = steps.length === 0 || steps.indexOf(found.step) === steps.length - 1
  const isOpen = found.status === 'open'
  // The workflow's own actions are the claimant's (approval refuses them otherwise: 请先认领该案件),
  // so they appear once the case is claimed by this member, not while the claim is on its way.
  const mine = isOpen && me !== null && found.assignee === me
  const available: { kind: ActionKind; show: boolean }[] = [
    { kind: 'advance', show: mine && !isLastStep },
    { kind: 'approve', show: mine && isLastStep },
    { kind: 'deny', show: mine && isLastStep },
    { kind: 'correction', show: mine },
    { kind: 'suspend', show: mine },
    { kind: 'resume', show: found.status === 'suspended' },
    { kind: 'notAccept', show: isOpen || found.status === 'submitted' },
  ]
  const actions = available.filter((a) => a.show && can(OPERATIONS[a.kind]))
  const properties = formSchema?.properties ?? {}
  const formEntries = Object.entries(found.form)

  return (
    <section aria-labelledby="case-title">
      <PageHead id="case-title" title={zh.caseDetail.title}>
        <Button theme="default" variant="outline" onClick={() => navigate('/review')}>
          {zh.caseDetail.back}
        </Button>
      </PageHead>
      <ProblemAlert problem={open ? null : problem} />
      {notice ? <p role="status">{notice}</p> : null}

      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.summary}</h2>}>
        <dl className="fields">
          <dt>{zh.caseDetail.number}</dt>
          <dd>{found.application_id}</dd>
          <dt>{zh.caseDetail.item}</dt>
          <dd>{found.item_code}</dd>
          <dt>{zh.caseDetail.department}</dt>
          <dd>{found.department}</dd>
          <dt>{zh.caseDetail.status}</dt>
          <dd>{zh.caseStatuses[found.status] ?? found.status}</dd>
          <dt>{zh.caseDetail.steps}</dt>
          <dd>
            {steps.length
              ? steps.map((name, i) => (
                  <span key={`${name}-${i}`} className={name === found.step ? 'step current' : 'step'}>
                    {name}
                    {name === found.step ? zh.caseDetail.currentStep : null}
                  </span>
                ))
              : found.step}
          </dd>
          <dt>{zh.caseDetail.assignee}</dt>
          <dd>{assigneeText(found.assignee, state.status === 'ready' ? state : null)}</dd>
          <dt>{zh.caseDetail.submittedAt}</dt>
          <dd>{formatDateTime(found.submitted_at)}</dd>
          <dt>{zh.caseDetail.acceptedAt}</dt>
          <dd>{formatDateTime(found.accepted_at)}</dd>
          <dt>{zh.caseDetail.deadline}</dt>
          <dd>
            {formatDate(found.due_date)}
            {found.due_provisional ? zh.review.provisional : null}
            <DeadlineLight light={found.deadline_light} daysLeft={found.working_days_left} />
            {found.stopped_days > 0 ? ` ${zh.review.stoppedDays(found.stopped_days)}` : null}
          </dd>
        </dl>
      </Card>

      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.actionsTitle}</h2>}>
        <Space breakLine>
          {found.assignee === null && isOpen && can(OPERATIONS.claim) ? (
            <Button theme="primary" loading={busy} onClick={() => void run('claim')}>
              {zh.caseDetail.claim}
            </Button>
          ) : null}
          {actions.map(({ kind }) => (
            <Button
              key={kind}
              theme={kind === 'deny' || kind === 'notAccept' ? 'danger' : kind === 'approve' ? 'success' : 'default'}
              variant="outline"
              aria-haspopup={kind === 'resume' ? undefined : 'dialog'}
              onClick={() => {
                if (kind === 'resume') void run('resume')
                else {
                  setProblem(null)
                  setOpen(kind)
                }
              }}
            >
              {zh.caseDetail[kind]}
            </Button>
          ))}
        </Space>
        <ActionDialog title={open ? zh.caseDetail[open] : ''} open={open !== null} onClose={() => setOpen(null)}>
          {open ? (
            <Form labelAlign="top" colon={false} onSubmit={() => void run(open)}>
              {open === 'suspend' ? (
                <SelectField
                  label={zh.caseDetail.procedure}
                  name="procedure"
                  value={procedure}
                  onChange={(v) => setProcedure((PROCEDURES as string[]).includes(v) ? (v as Procedure) : PROCEDURES[0])}
                  choices={PROCEDURES.map((p) => ({ value: p, label: zh.caseDetail.procedures[p] }))}
                  required
                />
              ) : null}
              {open === 'deny' || open === 'correction' || open === 'notAccept' ? (
                <TextAreaField
                  label={zh.caseDetail.reasonLabel}
                  name="reason"
                  value={reason}
                  onChange={setReason}
                  required
                  maxLength={1000}
                />
              ) : null}
              {open === 'correction' ? (
                <TextAreaField
                  label={zh.caseDetail.correctionMaterials}
                  name="materials"
                  value={correctionMaterials}
                  onChange={setCorrectionMaterials}
                />
              ) : null}
              {open === 'approve' || open === 'suspend' || open === 'advance' ? (
                <TextAreaField
                  label={zh.caseDetail.comment}
                  name="comment"
                  value={comment}
                  onChange={setComment}
                  maxLength={1000}
                />
              ) : null}
              <ProblemAlert problem={problem} />
              <DialogButtons
                confirm={zh.caseDetail.confirm(zh.caseDetail[open])}
                busy={busy}
                onCancel={() => setOpen(null)}
              />
            </Form>
          ) : null}
        </ActionDialog>
      </Card>

      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.form}</h2>}>
        {formEntries.length ? (
          <dl className="fields">
            {formEntries.map(([key, value]) => (
              <div key={key} className="field-row">
                <dt>{properties[key]?.title || key}</dt>
                <dd>{text(value)}</dd>
              </div>
            ))}
          </dl>
        ) : (
          <p>{zh.caseDetail.noForm}</p>
        )}
      </Card>

      <CaseMaterials
        applicationId={found.application_id}
        titles={Object.fromEntries(Object.entries(properties).map(([key, p]) => [key, p?.title ?? key]))}
      />

      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.decisions}</h2>}>
        {found.decisions.length ? (
          found.decisions.map((decision, index) => (
            <div key={`${decision.decided_at}-${index}`} className="decision">
              <dl className="fields">
                <dt>{zh.caseDetail.decisionKind}</dt>
                <dd>{zh.caseDetail.decisionKinds[decision.kind] ?? decision.kind}</dd>
                <dt>{zh.caseDetail.outcome}</dt>
                <dd>{zh.caseDetail.outcomes[decision.outcome] ?? decision.outcome}</dd>
                <dt>{zh.caseDetail.reason}</dt>
                <dd>{decision.reason || '—'}</dd>
                <dt>{zh.caseDetail.decidedBy}</dt>
                <dd>{zh.caseDetail.actors[decision.decided_by] ?? decision.decided_by}</dd>
                <dt>{zh.caseDetail.decidedAt}</dt>
                <dd>
                  {formatDateTime(decision.decided_at)}
                  {decision.elapsed_ms !== null ? ` ${zh.caseDetail.elapsed(Math.round(decision.elapsed_ms))}` : null}
                </dd>
                <dt>{zh.caseDetail.lookupIds}</dt>
                <dd>{decision.lookup_ids.length ? decision.lookup_ids.join(zh.app.listSeparator) : zh.app.none}</dd>
              </dl>
              {decision.rule_results.length ? (
                <Table<RuleRow> rowKey="key" data={ruleRows(decision, index)} columns={ruleColumns} size="small" tableLayout="auto" />
              ) : null}
            </div>
          ))
        ) : (
          <p>{zh.caseDetail.noDecisions}</p>
        )}
      </Card>

      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.timeline}</h2>}>
        {found.actions.length ? (
          <ol className="timeline">
            {found.actions.map((action, index) => (
              <li key={`${action.at}-${index}`}>
                <time dateTime={action.at}>{formatDateTime(action.at)}</time> <strong>{zh.caseDetail.actionNames[action.action] ?? action.action}</strong>{' '}
                <span>{zh.caseDetail.actors[action.actor] ?? action.actor}</span>
                {action.comment ? <div className="muted">{action.comment}</div> : null}
              </li>
            ))}
          </ol>
        ) : (
          <p>{zh.caseDetail.noTimeline}</p>
        )}
      </Card>
    </section>
  )
}
