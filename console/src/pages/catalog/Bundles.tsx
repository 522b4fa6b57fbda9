// 一件事: the published bundles, and a new bundle (or a revision of one, by its code) of my
// department's items as a draft, then published bound to its members' current versions.
import { useCallback, useEffect, useState } from 'react'
import { Button, Card, Form, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, ProblemAlert, usePageTitle } from '../../components/common'
import { TextAreaField, TextField } from '../../components/fields'
import { zh } from '../../i18n/zh'

type Bundle = Schemas['catalog.BundleVersionOut']

const b = zh.catalog.bundles

const columns: PrimaryTableCol<Bundle>[] = [
  { colKey: 'code', title: b.columns.code, cell: ({ row }) => row.content.code },
  { colKey: 'name', title: b.columns.name, cell: ({ row }) => row.content.name },
  {
    colKey: 'members',
    title: b.columns.members,
    cell: ({ row }) => row.content.members.map((m) => m.implementing_code).join(zh.app.listSeparator),
  },
  { colKey: 'published_at', title: b.columns.publishedAt, cell: ({ row }) => formatDateTime(row.published_at) },
]

function formSchema(text: string): Record<string, unknown> | null {
  if (!text.trim()) return { type: 'object', properties: {} }
  try {
    const parsed: unknown = JSON.parse(text)
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null
  } catch {
    return null
  }
}

export function BundlesPage() {
  usePageTitle(b.title)
  const { can } = useAuth()
  const [bundles, setBundles] = useState<Bundle[]>([])
  const [loading, setLoading] = useState(true)
  const [code, setCode] = useState('')
  const [name, setName] = useState('')
  const [description, setDescription] = useState('')
  const [members, setMembers] = useState('')
  const [schema, setSchema] = useState('')
  const [draft, setDraft] = useState<Bundle | null>(null)
  const [busy, setBusy] = useState<string | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  const load = useCallback(async () => {
    const { data } = await attempt(() => api.GET('/api/v1/bundles'))
    setLoading(false)
    setBundles(data ?? [])
  }, [])

  useEffect(() => {
    void load()
  }, [load])

  async function create() {
    const form_schema = formSchema(schema)
    if (!form_schema) {
      setProblem(b.invalidJson)
      return
    }
    if (busy) return
    setBusy('create')
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/catalog/bundles', {
        body: {
          code: code.trim(),
          name: name.trim(),
          description: description.trim(),
          members: members
            .split(/[\s,，、]+/)
            .filter(Boolean)
            .map((implementing_code) => ({ implementing_code })),
          form_schema,
        },
      })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setDraft(data)
    setNotice(b.created(data.content.code))
  }

  async function publish() {
    if (!draft || busy) return
    setBusy('publish')
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/catalog/bundle-versions/{id}/publish', { params: { path: { id: draft.id } } })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setDraft(null)
    setNotice(b.published)
    void load()
  }

  return (
    <section aria-labelledby="bundles-title">
      <h1 id="bundles-title" className="page-title">
        {b.title}
      </h1>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      <Card className="panel" title={<h2 className="section-title">{b.caption}</h2>}>
        <Table<Bundle> rowKey="id" data={bundles} columns={columns} loading={loading} empty={b.empty} tableLayout="auto" />
      </Card>
      {can('POST /api/v1/staff/catalog/bundles') ? (
        <Card className="panel" title={<h2 className="section-title">{b.newTitle}</h2>}>
          <Form labelAlign="top" colon={false} onSubmit={() => void create()}>
            <TextField label={b.code} name="code" required value={code} onChange={setCode} maxLength={64} />
            <TextField label={b.name} name="name" required value={name} onChange={setName} maxLength={200} />
            <TextAreaField label={b.description} name="description" value={description} onChange={setDescription} maxLength={2000} />
            <TextAreaField label={b.members} name="members" required value={members} onChange={setMembers} hint={b.membersHint} />
            <TextAreaField label={b.formSchema} name="form_schema" value={schema} onChange={setSchema} hint={b.formSchemaHint} />
            <Button type="submit" theme="primary" loading={busy === 'create'}>
              {b.create}
            </Button>
          </Form>
          {draft && can('POST /api/v1/staff/catalog/bundle-versions/{id}/publish') ? (
            <Button theme="primary" className="chosen" loading={busy === 'publish'} onClick={() => void publish()}>
              {b.publish}
            </Button>
          ) : null}
        </Card>
      ) : null}
    </section>
  )
}
