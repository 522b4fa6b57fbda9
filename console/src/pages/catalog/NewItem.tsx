// 新建事项: a new item of my department as a draft (the common elements and rules; the rest is
// completed on the draft, whose problems say what is still missing).
import { useState } from 'react'
import { useNavigate } from 'react-router-dom'
import { Card } from 'tdesign-react'
import { api, attempt } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { ProblemAlert, usePageTitle } from '../../components/common'
import { zh } from '../../i18n/zh'
import { ContentEditor, type ItemContent } from './ContentEditor'

const t = zh.catalog

export function NewItemPage() {
  usePageTitle(t.editor.newTitle)
  const navigate = useNavigate()
  const { state } = useAuth()
  const me = state.status === 'ready' ? state.me : null
  const [busy, setBusy] = useState(false)
  const [problem, setProblem] = useState<string | null>(null)
  const blank: ItemContent = {
    catalog_code: '',
    implementing_code: '',
    name: '',
    item_type: '公共服务',
    department: me?.department ?? '',
    region_code: me?.region ?? '',
  }

  async function create(content: ItemContent) {
    if (busy) return
    setBusy(true)
    const { data, problem } = await attempt(() => api.POST('/api/v1/staff/catalog/items', { body: content }))
    setBusy(false)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    navigate(`/catalog/versions/${encodeURIComponent(data.id)}`)
  }

  return (
    <section aria-labelledby="new-item-title">
      <h1 id="new-item-title" className="page-title">
        {t.editor.newTitle}
      </h1>
      <ProblemAlert problem={problem} />
      <Card className="panel">
        <ContentEditor content={blank} creating busy={busy} submitLabel={t.editor.create} onSave={(c) => void create(c)} />
      </Card>
    </section>
  )
}
