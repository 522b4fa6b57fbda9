import Taro, { useRouter } from '@tarojs/taro'
import { Checkbox, CheckboxGroup, Label, Text, View } from '@tarojs/components'
import { useEffect, useRef, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { uploadMaterial } from '../../api/upload'
import { Action } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { asFormSchema, cleaned, SchemaForm, validate, type FormValues } from '../../components/SchemaForm'
import { Banner, Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useLoad } from '../../lib/useLoad'
import { clearDraft, loadDraft, newIdempotencyKey, saveDraft } from '../../state/drafts'
import { materialSource } from '../../lib/format'
import { actingFor } from '../../lib/acting'
import { markSubscribeOffer } from '../../lib/subscribe'

type Material = Schemas['catalog.Material']
type MaterialChoice = Schemas['intake.MaterialChoiceIn']

/** What is kept in storage while the form is filled (survives a lost session and a restart). */
interface Draft {
  form: FormValues
  /** material index → a local file chosen for upload (not kept across restarts on H5) */
  files: Record<number, { path: string; name: string }>
  /** one key per filing, so a double tap or a retry after a timeout files once */
  idempotencyKey: string
  /** the 告知承诺 accepted: it stands in for every material whose source is commitment */
  accepted: boolean
}

function emptyDraft(): Draft {
  return { form: {}, files: {}, idempotencyKey: newIdempotencyKey(), accepted: false }
}

function isUpload(m: Material): boolean {
  return (m.source ?? 'upload') === 'upload'
}

function MaterialChoiceRow({
  index,
  material,
  draft,
  update
}: {
  index: number
  material: Material
  draft: Draft
  update: (change: (d: Draft) => Draft) => void
}) {
  const source = material.source ?? 'upload'
  const file = draft.files[index]
  const choose = async () => {
    const picked = await Taro.chooseImage({ count: 1, sizeType: ['compressed'] })
    const path = picked.tempFilePaths[0]
    if (path) update((d) => ({ ...d, files: { ...d.files, [index]: { path, name: material.name } } }))
  }
  return (
    <View className='row'>
      <View className='row-main'>
        <Text className='row-title'>{material.name}</Text>
        <Text className='row-sub'>{materialSource(source)}</Text>
        {source === 'commitment' ? (
          <Text className='row-sub'>{draft.accepted ? `✓ ${zh.apply.commitmentLabel}` : zh.apply.commitmentBelow}</Text>
        ) : null}
        {isUpload(material) ? (
          <View>
            {file ? <Text className='row-sub'>✓ {file.name}</Text> : null}
            <Action mini onClick={() => void choose()}>
              {file ? zh.common.retry : zh.guide.sources.upload}
            </Action>
            {!file && material.may_be_missing ? (
              <Text className='row-sub'>{zh.apply.toleratedNote(material.supplement_days ?? null)}</Text>
            ) : null}
          </View>
        ) : null}
      </View>
    </View>
  )
}

export default function ApplyPage() {
  const { params } = useRouter()
  const code = decodeURIComponent(params.code ?? '')
  const draftKey = `apply.${code}`
  const item = useLoad(() => api.get('/api/v1/items/{code}', { path: { code } }), [code])
  const [draft, setDraft] = useState<Draft>(() => loadDraft<Draft>(draftKey) ?? emptyDraft())
  const [restored] = useState(() => loadDraft<Draft>(draftKey) !== null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const filing = useRef(false)
  // 以企业名义办理 (chosen on 我的 → 我代办的企业): the company is the applicant.
  const [acting] = useState(() => actingFor())
  const actFor = acting ? { act_for_company: acting.uscc } : {}

  // Every change is kept at once: a 401 that sends the citizen to login loses nothing.
  useEffect(() => {
    saveDraft(draftKey, draft)
  }, [draftKey, draft])

  const content = item.data?.content
  const schema = asFormSchema(content?.form_schema)
  const materials = content?.materials ?? []
  const needsCommitment = materials.some((m) => m.source === 'commitment')

  const submit = async () => {
    if (filing.current) return // a double tap files once (and the Idempotency-Key covers retries)
    const problem = schema ? validate(schema, draft.form) : null
    if (problem) {
      setError(problem)
      return
    }
    if (needsCommitment && !draft.accepted) {
      setError(zh.apply.commitmentRequired)
      return
    }
    filing.current = true
    setBusy(true)
    setError(null)
    try {
      const form = schema ? cleaned(schema, draft.form) : {}
      const choices: MaterialChoice[] = materials.flatMap((m, index) =>
        m.source === 'commitment' && draft.accepted ? [{ index, commitment: true }] : []
      )
      const uploads = Object.entries(draft.files).map(([index, f]) => ({ index: Number(index), ...f }))
      let application: Schemas['intake.ApplicationOut']
      if (uploads.length === 0) {
        application = await api.post('/api/v1/applications', {
          header: { 'Idempotency-Key': draft.idempotencyKey },
          body: { item_code: code, form, materials: choices, ...actFor }
        })
      } else {
        // Files need an application to belong to: a draft with the final form, then the
        // uploads, then the submission naming them.
        const created = await api.post('/api/v1/applications', {
          header: { 'Idempotency-Key': draft.idempotencyKey },
          body: { item_code: code, form, draft: true, ...actFor }
        })
        for (const upload of uploads) {
          const stored = await uploadMaterial(created.id, upload.path, upload.name)
          choices.push({ index: upload.index, file_id: stored.id })
        }
        application = await api.post('/api/v1/applications/{application_id}/submit', {
          path: { application_id: created.id },
          body: { materials: choices }
        })
      }
      clearDraft(draftKey)
      markSubscribeOffer(application.id)
      void Taro.showToast({ title: zh.apply.done, icon: 'success' })
      void Taro.redirectTo({ url: `/pages/application/index?id=${application.id}` })
    } catch (e) {
      setError(errorText(e, zh.apply.failed))
    } finally {
      filing.current = false
      setBusy(false)
    }
  }

  return (
    <Screen title={zh.titles.apply}>
      {item.loading ? <Loading /> : null}
      {item.error ? <Failure message={item.error} onRetry={item.reload} /> : null}
      {content ? (
        <>
          <View className='section'>
            <Heading>{content.name}</Heading>
            {restored ? <Banner kind='info'>{zh.apply.draftRestored}</Banner> : null}
            {acting ? <Banner kind='info'>{zh.me.actingAs(acting.company_name)}</Banner> : null}
          </View>
          {schema ? (
            <Section title={zh.apply.formHeading}>
              <SchemaForm schema={schema} values={draft.form} onChange={(form) => setDraft((d) => ({ ...d, form }))} />
            </Section>
          ) : null}
          {materials.length > 0 ? (
            <Section title={zh.apply.materialsHeading}>
              {materials.map((m, index) => (
                <MaterialChoiceRow key={`${index}-${m.name}`} index={index} material={m} draft={draft} update={setDraft} />
              ))}
            </Section>
          ) : null}
          {needsCommitment ? (
            <View className='section'>
              <Text className='hint'>{zh.apply.commitmentText}</Text>
              <CheckboxGroup onChange={(e) => setDraft((d) => ({ ...d, accepted: e.detail.value.includes('accepted') }))}>
                <Label className='row' for='accept-commitment'>
                  <Checkbox id='accept-commitment' value='accepted' checked={draft.accepted} ariaLabel={zh.apply.acceptCommitment} />
                  <Text>{zh.apply.acceptCommitment}</Text>
                </Label>
              </CheckboxGroup>
            </View>
          ) : null}
          {error ? <Banner kind='warn'>{error}</Banner> : null}
          <Action kind='primary' disabled={busy} onClick={() => void submit()}>
            {busy ? zh.apply.submitting : zh.apply.submit}
          </Action>
        </>
      ) : null}
    </Screen>
  )
}
