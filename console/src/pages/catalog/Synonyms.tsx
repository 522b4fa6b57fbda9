// 同义词: the groups of phrases search treats as one. Every catalogue member reads them; only
// the platform catalogue role (they serve every department) saves them.
import { useEffect, useState } from 'react'
import { Button, Card, Form, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { ProblemAlert, usePageTitle } from '../../components/common'
import { TextAreaField } from '../../components/fields'
import { zh } from '../../i18n/zh'

const s = zh.catalog.synonyms
type Group = { key: string; phrases: string }

const columns: PrimaryTableCol<Group>[] = [{ colKey: 'phrases', title: s.column }]

function parse(text: string): string[][] {
  return text
    .split('\n')
    .map((line) =>
      line
        .split(/[\s,，、]+/)
        .map((p) => p.trim())
        .filter(Boolean)
    )
    .filter((group) => group.length >= 2)
}

export function SynonymsPage() {
  usePageTitle(s.title)
  const { can } = useAuth()
  const [groups, setGroups] = useState<string[][]>([])
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const [problem, setProblem] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  function show(found: string[][]) {
    setGroups(found)
    setText(found.map((group) => group.join(' ')).join('\n'))
  }

  useEffect(() => {
    void attempt(() => api.GET('/api/v1/staff/catalog/synonyms')).then(({ data, problem }) => {
      if (data) show(data.groups)
      else setProblem(problem ?? null)
    })
  }, [])

  async function save() {
    if (busy) return
    setBusy(true)
    const { data, problem } = await attempt(() =>
      api.PUT('/api/v1/staff/catalog/synonyms', { body: { groups: parse(text) } })
    )
    setBusy(false)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setNotice(s.saved)
    show(data.groups)
  }

  const editable = can('PUT /api/v1/staff/catalog/synonyms')
  return (
    <section aria-labelledby="synonyms-title">
      <h1 id="synonyms-title" className="page-title">
        {s.title}
      </h1>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      {editable ? (
        <Card className="panel">
          <Form labelAlign="top" colon={false} onSubmit={() => void save()}>
            <TextAreaField label={s.groups} name="groups" value={text} onChange={setText} hint={s.hint} />
            <Button type="submit" theme="primary" loading={busy}>
              {s.save}
            </Button>
          </Form>
        </Card>
      ) : (
        <p className="muted">{s.readOnly}</p>
      )}
      <Card className="panel" title={<h2 className="section-title">{s.caption}</h2>}>
        <Table<Group>
          rowKey="key"
          data={groups.map((group, index) => ({ key: String(index), phrases: group.join(zh.app.listSeparator) }))}
          columns={columns}
          empty={s.empty}
          tableLayout="auto"
        />
      </Card>
    </section>
  )
}
