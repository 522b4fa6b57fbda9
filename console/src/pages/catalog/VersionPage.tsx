// One version of an item: its elements, what it still lacks (inline), the draft editor, the
// dry run of its rules, and the four-eyes actions (the author submits; an approver of the owning
// department who did not touch it approves or sends it back). Each button only when allowed.
import { useCallback, useEffect, useState } from 'react'
import { useNavigate, useParams } from 'react-router-dom'
import { Button, Card, Form, Loading, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { ActionDialog, DialogButtons } from '../../components/ActionDialog'
import { formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { TextAreaField } from '../../components/fields'
import { zh } from '../../i18n/zh'
import { ContentEditor, type ItemContent } from './ContentEditor'
import { DryRunResult, fieldNames, StatusTag } from './parts'

type Version = Schemas['catalog.ItemVersionOut']
type Problem = Schemas['catalog.Problem']
type DryRun = Schemas['catalog.DryRunOut']
type RuleChange = Schemas['catalog.RuleChangeOut']
type Rule = Schemas['catalog.Rule']
type Material = Schemas['catalog.Material']

const t = zh.catalog
const v = t.version

const problemColumns: PrimaryTableCol<Problem>[] = [
  { colKey: 'field', title: v.problemField, cell: ({ row }) => t.ruleChanges.fieldNames[row.field] ?? row.field },
  { colKey: 'message', title: v.problemMessage },
]

const ruleColumns: PrimaryTableCol<Rule>[] = [
  { colKey: 'name', title: v.ruleColumns.name },
  { colKey: 'expression', title: v.ruleColumns.expression, cell: ({ row }) => <code className="code">{row.expression}</code> },
  { colKey: 'message', title: v.ruleColumns.message },
  { colKey: 'needs', title: v.ruleColumns.needs, cell: ({ row }) => (row.needs ?? []).join(zh.app.listSeparator) || '—' },
  { colKey: 'refer', title: v.ruleColumns.refer, cell: ({ row }) => (row.refer ? zh.app.yes : zh.app.no) },
]

const materialColumns: PrimaryTableCol<Material>[] = [
  { colKey: 'name', title: v.materialName },
  { colKey: 'source', title: v.materialSource, cell: ({ row }) => row.source ?? 'upload' },
  { colKey: 'required', title: v.materialRequired, cell: ({ row }) => (row.required === false ? zh.app.no : zh.app.yes) },
]

function Elements({ version }: { version: Version }) {
  const c = version.content
  const f = v.fields
  const fees = c.fees ?? []
  const entries: [string, string][] = [
    [f.implementingCode, c.implementing_code],
    [f.catalogCode, c.catalog_code],
    [f.name, c.name],
    [f.shortName, c.short_name ?? '—'],
    [f.itemType, c.item_type],
    [f.department, c.department],
    [f.region, c.region_code],
    [f.legalBasis, c.legal_basis ?? '—'],
    [f.legalDays, v.days(c.legal_days)],
    [f.committedDays, v.days(c.committed_days)],
    [f.conditions, c.conditions ?? '—'],
    [f.channels, (c.channels ?? []).join(zh.app.listSeparator) || '—'],
    [f.scope, v.scopes[c.scope ?? 'district'] ?? String(c.scope)],
    [f.assurance, v.assurances[c.assurance ?? 'real_name'] ?? String(c.assurance)],
    [f.autoApproval, c.auto_approval ? zh.app.yes : zh.app.no],
    [f.grantLimit, v.grantLimits[c.grant_limit ?? 'none'] ?? String(c.grant_limit)],
    [f.fees, fees.length ? fees.map((fee) => `${fee.name} ${fee.amount_yuan}`).join(zh.app.listSeparator) : v.free],
    [f.keywords, (c.keywords ?? []).join(zh.app.listSeparator) || '—'],
    [f.themes, (c.themes ?? []).join(zh.app.listSeparator) || '—'],
    [f.lists, version.lists.join(zh.app.listSeparator) || '—'],
  ]
  return (
    <dl className="fields">
      {entries.map(([label, value]) => (
        <div key={label} className="field-row">
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  )
}

export function VersionPage() {
  usePageTitle(v.title)
  const { id = '' } = useParams()
  const navigate = useNavigate()
  const { can, state } = useAuth()
  const me = state.status === 'ready' ? state.me.subject : null
  const [version, setVersion] = useState<Version | null>(null)
  const [problems, setProblems] = useState<Problem[] | null>(null)
  const [records, setRecords] = useState<RuleChange[]>([])
  const [dryRun, setDryRun] = useState<DryRun | null>(null)
  const [editing, setEditing] = useState(false)
  const [dialog, setDialog] = useState<'approve' | 'reject' | 'withdraw' | null>(null)
  const [reason, setReason] = useState('')
  const [busy, setBusy] = useState<string | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  const loadDetails = useCallback(
    async (found: Version) => {
      if (found.status === 'draft' || found.status === 'submitted') {
        const answer = await attempt(() =>
          api.GET('/api/v1/staff/catalog/item-versions/{id}/problems', { params: { path: { id: found.id } } })
        )
        setProblems(answer.data ?? null)
      } else setProblems(null)
      if (can('GET /api/v1/staff/catalog/rule-changes')) {
        const answer = await attempt(() =>
          api.GET('/api/v1/staff/catalog/rule-changes', { params: { query: { item_id: found.item_id } } })
        )
        setRecords((answer.data ?? []).filter((record) => record.version_id === found.id))
      }
    },
    [can]
  )

  const show = useCallback(
    (found: Version) => {
      setVersion(found)
      void loadDetails(found)
    },
    [loadDetails]
  )

  useEffect(() => {
    setVersion(null)
    setDryRun(null)
    setEditing(false)
    void attempt(() => api.GET('/api/v1/staff/catalog/item-versions/{id}', { params: { path: { id } } })).then(
      ({ data, problem }) => {
        if (data) show(data)
        else setProblem(problem ?? null)
      }
    )
  }, [id, show])

  async function act(
    kind: string,
    call: () => Promise<{ data?: Version; error?: unknown; response: Response }>,
    done: string
  ) {
    if (busy) return
    setBusy(kind)
    setNotice(null)
    const { data, problem } = await attempt(call)
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setDialog(null)
    setReason('')
    setNotice(done)
    if (data.id !== id) navigate(`/catalog/versions/${encodeURIComponent(data.id)}`)
    else show(data)
  }

  async function runDryRun() {
    if (busy || !version) return
    setBusy('dry-run')
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/catalog/item-versions/{id}/dry-run', { params: { path: { id: version.id } } })
    )
    setBusy(null)
    if (data) {
      setDryRun(data)
      setProblem(null)
    } else setProblem(problem ?? null)
  }

  function save(content: ItemContent) {
    if (!version) return
    void act(
      'save',
      () => api.PUT('/api/v1/staff/catalog/item-versions/{id}', { params: { path: { id: version.id } }, body: content }),
      t.editor.saved
    ).then(() => setEditing(false))
  }

  if (!version) {
    return (
      <section aria-labelledby="version-title">
        <h1 id="version-title" className="page-title">
          {v.title}
        </h1>
        <ProblemAlert problem={problem} />
        {problem ? null : <Loading text={zh.app.loading} />}
      </section>
    )
  }

  const path = { params: { path: { id: version.id } } }
  const itemPath = { params: { path: { id: version.item_id } } }
  const isDraft = version.status === 'draft'
  const isSubmitted = version.status === 'submitted'
  const touched = me !== null && [version.created_by, version.edited_by, version.submitted_by].includes(me)
  const pending = records.find((record) => record.status === 'pending')
  const c = version.content

  return (
    <section aria-labelledby="version-title">
      <PageHead id="version-title" title={v.heading(c.name, version.version)}>
        <Button theme="default" variant="outline" onClick={() => navigate('/catalog')}>
          {v.back}
        </Button>
      </PageHead>
      <ProblemAlert problem={dialog ? null : problem} />
      {notice ? <p role="status">{notice}</p> : null}

      <Card className="panel" title={<h2 className="section-title">{v.summary}</h2>}>
        <dl className="fields">
          <dt>{v.fields.status}</dt>
          <dd>
            <StatusTag status={version.status} />
          </dd>
          <dt>{v.fields.version}</dt>
          <dd>{version.version}</dd>
          <dt>{v.fields.createdBy}</dt>
          <dd>{version.created_by ?? '—'}</dd>
          <dt>{v.fields.editedBy}</dt>
          <dd>{version.edited_by ?? '—'}</dd>
          <dt>{v.fields.submittedBy}</dt>
          <dd>{version.submitted_by ?? '—'}</dd>
          <dt>{v.fields.submittedAt}</dt>
          <dd>{formatDateTime(version.submitted_at)}</dd>
          <dt>{v.fields.approvedBy}</dt>
          <dd>{version.approved_by ?? '—'}</dd>
          <dt>{v.fields.publishedAt}</dt>
          <dd>{formatDateTime(version.published_at)}</dd>
        </dl>
        {isSubmitted ? <p className="muted">{v.fourEyes}</p> : null}
        {isSubmitted && touched ? <p className="muted">{v.ownChange}</p> : null}
        <Space breakLine className="chosen">
          {version.status === 'published' && can('POST /api/v1/staff/catalog/items/{id}/revisions') ? (
            <Button
              theme="primary"
              loading={busy === 'revise'}
              onClick={() =>
                void act('revise', () => api.POST('/api/v1/staff/catalog/items/{id}/revisions', itemPath), v.revisionStarted)
              }
            >
              {v.startRevision}
            </Button>
          ) : null}
          {isDraft && can('PUT /api/v1/staff/catalog/item-versions/{id}') && !editing ? (
            <Button theme="default" variant="outline" onClick={() => setEditing(true)}>
              {v.edit}
            </Button>
          ) : null}
          {isDraft && can('POST /api/v1/staff/catalog/item-versions/{id}/dry-run') ? (
            <Button theme="default" variant="outline" loading={busy === 'dry-run'} onClick={() => void runDryRun()}>
              {t.dryRun.run}
            </Button>
          ) : null}
          {isDraft && can('POST /api/v1/staff/catalog/item-versions/{id}/publish') ? (
            <Button
              theme="default"
              variant="outline"
              loading={busy === 'publish'}
              onClick={() =>
                void act('publish', () => api.POST('/api/v1/staff/catalog/item-versions/{id}/publish', path), v.published)
              }
            >
              {v.publish}
            </Button>
          ) : null}
          {isDraft && can('POST /api/v1/staff/catalog/item-versions/{id}/submit') ? (
            <Button
              theme="primary"
              loading={busy === 'submit'}
              onClick={() =>
                void act('submit', () => api.POST('/api/v1/staff/catalog/item-versions/{id}/submit', path), v.submitted)
              }
            >
              {v.submit}
            </Button>
          ) : null}
          {isSubmitted && can('POST /api/v1/staff/catalog/item-versions/{id}/approve') ? (
            <Button theme="primary" onClick={() => setDialog('approve')}>
              {v.approve}
            </Button>
          ) : null}
          {isSubmitted && can('POST /api/v1/staff/catalog/item-versions/{id}/reject') ? (
            <Button theme="danger" variant="outline" onClick={() => setDialog('reject')}>
              {v.reject}
            </Button>
          ) : null}
          {version.status === 'published' && can('POST /api/v1/staff/catalog/items/{id}/withdraw') ? (
            <Button theme="danger" variant="outline" onClick={() => setDialog('withdraw')}>
              {v.withdraw}
            </Button>
          ) : null}
        </Space>
      </Card>

      {problems !== null ? (
        <Card className="panel" title={<h2 className="section-title">{v.problemsTitle}</h2>}>
          {problems.length ? (
            <Table<Problem> rowKey="field" data={problems} columns={problemColumns} tableLayout="auto" />
          ) : (
            <p>{v.noProblems}</p>
          )}
        </Card>
      ) : null}

      {dryRun ? (
        <Card className="panel" title={<h2 className="section-title">{t.dryRun.title}</h2>}>
          <p className="muted">{t.dryRun.hint}</p>
          <DryRunResult result={dryRun} headingId="dry-run-changes" />
        </Card>
      ) : null}

      {pending ? (
        <Card className="panel" title={<h2 className="section-title">{t.dryRun.recorded}</h2>}>
          <p>
            {t.ruleChanges.columns.fields}：{fieldNames(pending.changed_fields)}
          </p>
          <DryRunResult result={pending.dry_run} headingId="recorded-dry-run-changes" />
        </Card>
      ) : null}

      {editing ? (
        <Card className="panel" title={<h2 className="section-title">{t.editor.title}</h2>}>
          <ContentEditor
            content={c}
            busy={busy === 'save'}
            submitLabel={t.editor.save}
            onSave={save}
            onCancel={() => setEditing(false)}
          />
        </Card>
      ) : null}

      <Card className="panel" title={<h2 className="section-title">{v.elements}</h2>}>
        <Elements version={version} />
      </Card>
      <Card className="panel" title={<h2 className="section-title">{v.rules}</h2>}>
        {(c.rules ?? []).length ? (
          <Table<Rule> rowKey="name" data={c.rules ?? []} columns={ruleColumns} tableLayout="auto" />
        ) : (
          <p>{v.noRules}</p>
        )}
      </Card>
      <Card className="panel" title={<h2 className="section-title">{v.materials}</h2>}>
        {(c.materials ?? []).length ? (
          <Table<Material> rowKey="name" data={c.materials ?? []} columns={materialColumns} tableLayout="auto" />
        ) : (
          <p>{v.noMaterials}</p>
        )}
      </Card>
      <Card className="panel" title={<h2 className="section-title">{v.workflow}</h2>}>
        <ol className="timeline">
          {(c.workflow ?? []).map((step, index) => (
            <li key={`${step.name}-${index}`}>{step.name}</li>
          ))}
        </ol>
      </Card>

      <ActionDialog title={v.approveTitle} open={dialog === 'approve'} onClose={() => setDialog(null)}>
        <ProblemAlert problem={problem} />
        <p>{v.approveHint}</p>
        <DialogButtons
          confirm={v.approveConfirm}
          busy={busy === 'approve'}
          onConfirm={() =>
            void act('approve', () => api.POST('/api/v1/staff/catalog/item-versions/{id}/approve', path), v.approved)
          }
          onCancel={() => setDialog(null)}
        />
      </ActionDialog>
      <ActionDialog title={v.rejectTitle} open={dialog === 'reject'} onClose={() => setDialog(null)}>
        <ProblemAlert problem={problem} />
        <Form
          labelAlign="top"
          colon={false}
          onSubmit={() => {
            if (!reason.trim()) {
              setProblem(v.reasonRequired)
              return
            }
            void act(
              'reject',
              () =>
                api.POST('/api/v1/staff/catalog/item-versions/{id}/reject', { ...path, body: { reason: reason.trim() } }),
              v.rejected
            )
          }}
        >
          <TextAreaField label={v.rejectReason} name="reason" required value={reason} onChange={setReason} maxLength={500} />
          <DialogButtons
            confirm={v.rejectConfirm}
            theme="danger"
            busy={busy === 'reject'}
            onCancel={() => setDialog(null)}
          />
        </Form>
      </ActionDialog>
      <ActionDialog title={v.withdraw} open={dialog === 'withdraw'} onClose={() => setDialog(null)}>
        <ProblemAlert problem={problem} />
        <DialogButtons
          confirm={v.withdraw}
          theme="danger"
          busy={busy === 'withdraw'}
          onConfirm={() =>
            void act('withdraw', () => api.POST('/api/v1/staff/catalog/items/{id}/withdraw', itemPath), v.withdrawn)
          }
          onCancel={() => setDialog(null)}
        />
      </ActionDialog>
    </section>
  )
}
