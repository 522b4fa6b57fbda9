// 新建窗口申请: the clerk files for an applicant at the counter. Pick the item, fill its form
// (government-prefilled fields are not asked), identify the applicant and record how they were
// verified, settle the materials, submit once (an Idempotency-Key per filing).
import { useMemo, useRef, useState } from 'react'
import { useNavigate } from 'react-router-dom'
import { Button, Card, Form, Space, Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { CheckboxField, FileField, SelectField, TextField } from '../../components/fields'
import { zh } from '../../i18n/zh'
import { asFormSchema, formPayload, SchemaForm, validateForm, type FormValues } from './SchemaForm'

type ItemSummary = Schemas['catalog.ItemSummary']
type Guide = Schemas['catalog.ItemVersionOut']
type Material = Schemas['catalog.Material']
type Method = Schemas['intake.VerificationIn']['method']
type WindowApplication = Schemas['intake.WindowApplicationIn']

const METHODS: readonly Method[] = ['register_name_match', 'id_card_reader', 'face_check']

/** A v4 UUID, also where crypto.randomUUID is missing (a page not served over HTTPS). */
function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[6] = (bytes[6] & 0x0f) | 0x40
  bytes[8] = (bytes[8] & 0x3f) | 0x80
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

type Handling = 'shared' | 'certificate' | 'waived' | 'commitment' | 'tolerated' | 'upload' | 'optional'

function handlingOf(material: Material): Handling {
  const source = material.source ?? 'upload'
  if (source.startsWith('shared:')) return 'shared'
  if (source.startsWith('certificate:')) return 'certificate'
  if (source === 'waived') return 'waived'
  if (source === 'commitment') return 'commitment'
  if (material.required === false) return 'optional'
  if (material.may_be_missing) return 'tolerated'
  return 'upload'
}

export function NewApplicationPage() {
  usePageTitle(zh.newApp.title)
  const navigate = useNavigate()

  const [query, setQuery] = useState('')
  const [results, setResults] = useState<ItemSummary[] | null>(null)
  const [guide, setGuide] = useState<Guide | null>(null)
  const [searching, setSearching] = useState(false)

  const [kind, setKind] = useState<'person' | 'company'>('person')
  const [idNumber, setIdNumber] = useState('')
  const [name, setName] = useState('')
  const [agent, setAgent] = useState('')
  const [method, setMethod] = useState<Method>('register_name_match')
  const [reference, setReference] = useState('')
  const [values, setValues] = useState<FormValues>({})
  const [commitments, setCommitments] = useState<Record<number, boolean>>({})
  /** The scans taken at the counter, by material index: the applicant's library file each became. */
  const [scans, setScans] = useState<Record<number, { fileId: string; filename: string }>>({})
  const [scanning, setScanning] = useState<number | null>(null)

  const [errors, setErrors] = useState<Record<string, string>>({})
  const [problem, setProblem] = useState<string | null>(null)
  const [submitting, setSubmitting] = useState(false)
  const inFlight = useRef(false)
  const filing = useRef<{ key: string; body: string } | null>(null)

  const schema = useMemo(() => asFormSchema(guide?.content.form_schema), [guide])
  const materials = guide?.content.materials ?? []

  async function search() {
    setSearching(true)
    const q = query.trim()
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/items', { params: { query: q ? { q } : {} } })
    )
    setSearching(false)
    if (data) {
      setResults(data.items)
      setProblem(null)
    } else setProblem(problem ?? null)
  }

  async function choose(item: ItemSummary) {
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/items/{code}', { params: { path: { code: item.implementing_code } } })
    )
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setGuide(data)
    setValues({})
    setCommitments({})
    setErrors({})
    setProblem(null)
  }

  function check(): Record<string, string> {
    const found: Record<string, string> = schema ? validateForm(schema, values) : {}
    if (idNumber.trim().length !== 18) found.__id_number = zh.newApp.idLength
    if (!name.trim()) found.__name = zh.newApp.fieldRequired(kind === 'person' ? zh.newApp.name : zh.newApp.companyName)
    if (method !== 'register_name_match' && !reference.trim()) found.__reference = zh.newApp.referenceRequired
    return found
  }

  async function submit() {
    if (inFlight.current) return
    if (!guide) {
      setProblem(zh.newApp.chooseItemFirst)
      return
    }
    const found = check()
    setErrors(found)
    if (Object.keys(found).length) {
      setProblem(null)
      return
    }
    const body: WindowApplication = {
      item_version_id: guide.id,
      applicant: { kind, id_number: idNumber.trim().toUpperCase(), name: name.trim() },
      form: schema ? formPayload(schema, values) : {},
      materials: materials
        .map((_, index) => index)
        .filter((index) => commitments[index] || scans[index])
        .map((index) => (scans[index] ? { index, file_id: scans[index].fileId } : { index, commitment: true })),
      channel: 'window',
      agent: agent.trim() || null,
      verification: { method, reference: method === 'register_name_match' ? null : reference.trim() },
    }
    // One key per filing: a second click (or a retry of the same request) files once; a changed
    // request after a refusal is a new filing with a new key.
    const fingerprint = JSON.stringify(body)
    if (!filing.current || filing.current.body !== fingerprint) filing.current = { key: uuid(), body: fingerprint }
    const key = filing.current.key
    inFlight.current = true
    setSubmitting(true)
    setProblem(null)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/applications', { body, params: { header: { 'idempotency-key': key } } })
    )
    inFlight.current = false
    setSubmitting(false)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    navigate(`/window/${encodeURIComponent(data.id)}/receipt`, { state: { application: data } })
  }

  /** A paper material scanned at the counter goes into the applicant's library (their ID number
   * says whose), and the filing names it. */
  async function scan(index: number, material: Material, file: File | null) {
    if (!file) return
    if (!idNumber.trim()) {
      setProblem(zh.newApp.scanNeedsApplicant)
      return
    }
    const form = new FormData()
    form.append('file', file)
    form.append('material_name', material.name)
    form.append('applicant_kind', kind)
    form.append('applicant_id_number', idNumber.trim().toUpperCase())
    setScanning(index)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/files', {
        body: { file: file.name, material_name: material.name },
        // The body is typed for the document (a binary part is a string there); what is sent is
        // the FormData, whose multipart body and boundary the browser writes.
        bodySerializer: () => form,
      })
    )
    setScanning(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setScans((current) => ({ ...current, [index]: { fileId: data.id, filename: data.filename } }))
  }

  const resultColumns: PrimaryTableCol<ItemSummary>[] = [
    { colKey: 'name', title: zh.window.columns.item },
    { colKey: 'department', title: zh.newApp.department },
    {
      colKey: 'committed_days',
      title: zh.receipt.deadline,
      cell: ({ row }) => (row.committed_days === null ? '—' : zh.newApp.committedDays(row.committed_days)),
    },
    {
      colKey: 'choose',
      title: zh.window.columns.actions,
      cell: ({ row }) => (
        <Button size="small" variant="outline" onClick={() => void choose(row)} aria-label={`${zh.newApp.choose} ${row.name}`}>
          {zh.newApp.choose}
        </Button>
      ),
    },
  ]

  const materialColumns: PrimaryTableCol<Material & { index: number }>[] = [
    { colKey: 'name', title: zh.newApp.materialColumns.name },
    {
      colKey: 'required',
      title: zh.newApp.materialColumns.required,
      cell: ({ row }) => (
        <>
          {row.required === false ? zh.newApp.optional : zh.newApp.required}
          {row.condition ? <div className="muted">{zh.newApp.conditional(row.condition)}</div> : null}
        </>
      ),
    },
    {
      colKey: 'copies',
      title: zh.newApp.materialColumns.copies,
      cell: ({ row }) => zh.newApp.copies(row.originals ?? 0, row.copies ?? 0),
    },
    {
      colKey: 'handling',
      title: zh.newApp.handlingColumn,
      cell: ({ row }) => {
        const handling = handlingOf(row)
        switch (handling) {
          case 'shared':
            return zh.newApp.handling.shared
          case 'certificate':
            return zh.newApp.handling.certificate
          case 'waived':
            return zh.newApp.handling.waived
          case 'commitment':
            return (
              <CheckboxField
                label={zh.newApp.commitmentFor(row.name)}
                name={`commitment-${row.index}`}
                value={Boolean(commitments[row.index])}
                onChange={(checked) => setCommitments({ ...commitments, [row.index]: checked })}
              />
            )
          case 'tolerated':
          case 'optional':
          case 'upload':
            return (
              <>
                {handling === 'tolerated' && !scans[row.index] ? (
                  <Tag theme="warning" variant="light">
                    {zh.newApp.missingDeadline(row.supplement_days ?? null)}
                  </Tag>
                ) : null}
                <FileField
                  label={zh.newApp.scanFor(row.name)}
                  name={`scan-${row.index}`}
                  accept="application/pdf,image/jpeg,image/png"
                  disabled={scanning !== null}
                  hint={scans[row.index] ? zh.newApp.scanned(scans[row.index].filename) : zh.newApp.scanHint}
                  onChange={(file) => void scan(row.index, row, file)}
                />
              </>
            )
        }
      },
    },
  ]

  const idLabel = kind === 'person' ? zh.newApp.idNumberPerson : zh.newApp.idNumberCompany
  return (
    <section aria-labelledby="new-title">
      <PageHead id="new-title" title={zh.newApp.title}>
        <Button theme="default" variant="outline" onClick={() => navigate('/window')}>
          {zh.newApp.back}
        </Button>
      </PageHead>

      <Card className="panel" title={<h2 className="section-title">{zh.newApp.itemSection}</h2>}>
        <Form layout="inline" colon={false} onSubmit={() => void search()}>
          <TextField
            label={zh.newApp.itemSearch}
            name="q"
            value={query}
            onChange={setQuery}
            maxLength={50}
            hint={zh.newApp.itemSearchHint}
          />
          <Button type="submit" theme="primary" variant="outline" loading={searching}>
            {zh.newApp.search}
          </Button>
        </Form>
        {results ? (
          <div aria-label={zh.newApp.results} role="region">
            <Table<ItemSummary>
              rowKey="version_id"
              data={results}
              columns={resultColumns}
              empty={zh.newApp.noResults}
              tableLayout="auto"
              size="small"
            />
          </div>
        ) : null}
        {guide ? (
          <p role="status" className="chosen">
            {zh.newApp.chosenItem(guide.content.name, guide.content.department, guide.content.committed_days)}
          </p>
        ) : null}
      </Card>

      {guide ? (
        <Form labelAlign="top" colon={false} onSubmit={() => void submit()}>
          <Card className="panel" title={<h2 className="section-title">{zh.newApp.applicantSection}</h2>}>
            <SelectField
              label={zh.newApp.applicantKind}
              name="applicant_kind"
              value={kind}
              onChange={(v) => setKind(v === 'company' ? 'company' : 'person')}
              choices={[
                { value: 'person', label: zh.newApp.person },
                { value: 'company', label: zh.newApp.company },
              ]}
              required
            />
            <TextField
              label={idLabel}
              name="id_number"
              value={idNumber}
              onChange={setIdNumber}
              maxLength={18}
              required
              error={errors.__id_number}
            />
            <TextField
              label={kind === 'person' ? zh.newApp.name : zh.newApp.companyName}
              name="name"
              value={name}
              onChange={setName}
              maxLength={100}
              required
              error={errors.__name}
            />
            <TextField label={zh.newApp.agent} name="agent" value={agent} onChange={setAgent} maxLength={128} />
          </Card>

          <Card className="panel" title={<h2 className="section-title">{zh.newApp.verificationSection}</h2>}>
            <SelectField
              label={zh.newApp.verificationMethod}
              name="verification_method"
              value={method}
              onChange={(v) => setMethod((METHODS as readonly string[]).includes(v) ? (v as Method) : 'register_name_match')}
              choices={METHODS.map((m) => ({ value: m, label: zh.newApp.methods[m] }))}
              required
            />
            {method !== 'register_name_match' ? (
              <TextField
                label={zh.newApp.verificationReference}
                name="verification_reference"
                value={reference}
                onChange={setReference}
                maxLength={128}
                required
                error={errors.__reference}
              />
            ) : null}
          </Card>

          <Card className="panel" title={<h2 className="section-title">{zh.newApp.formSection}</h2>}>
            {schema ? (
              <SchemaForm
                schema={schema}
                values={values}
                errors={errors}
                onChange={(field, value) => setValues({ ...values, [field]: value })}
              />
            ) : (
              <p>{zh.newApp.noForm}</p>
            )}
          </Card>

          <Card className="panel" title={<h2 className="section-title">{zh.newApp.materialsSection}</h2>}>
            {materials.length ? (
              <Table<Material & { index: number }>
                rowKey="index"
                data={materials.map((m, index) => ({ ...m, index }))}
                columns={materialColumns}
                tableLayout="auto"
              />
            ) : (
              <p>{zh.newApp.noMaterials}</p>
            )}
          </Card>

          <ProblemAlert problem={problem} />
          <Space>
            {/* The same name while filing (the spinner and aria-busy say it is under way). */}
            <Button type="submit" theme="primary" loading={submitting} disabled={submitting} aria-busy={submitting || undefined}>
              {zh.newApp.submit}
            </Button>
          </Space>
        </Form>
      ) : (
        <ProblemAlert problem={problem} />
      )}
    </section>
  )
}
