import Taro, { useRouter } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { useEffect, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { uploadMaterial } from '../../api/upload'
import { Action, PickerField, TextAreaField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { date, dateTime } from '../../lib/format'
import { useLoad } from '../../lib/useLoad'
import { SubscribeSection } from '../../components/Subscribe'
import { clearSubscribeOffer, subscribeOffered } from '../../lib/subscribe'

type Application = Schemas['intake.ApplicationOut']
type RatingTag = NonNullable<Schemas['intake.RatingIn']['tags']>[number]

// Which actions the citizen may take comes with the application (`actions`, intake's own
// rules); these material states only pick the rows to supply first.
const OUTSTANDING = ['missing', 'tolerated']
// Being worked on by the platform, not waiting for the citizen: the page follows it by itself
// (a 秒批 application is decided and its certificate issued within seconds).
const IN_PROGRESS = ['submitted', 'accepted', 'under_review', 'approved']
const FOLLOW_EVERY_MS = 2000
const FOLLOW_FOR_MS = 5 * 60 * 1000
const RATING_TAGS: RatingTag[] = ['办事效率', '办事指南准确', '办事便捷', '服务态度', '材料精简', '一次办成', '多次跑动', '态度冷漠', '指南不清', '超时办理']

function Supplement({ application, onDone }: { application: Application; onDone: (a: Application) => void }) {
  const outstanding = application.materials.filter((m) => OUTSTANDING.includes(m.status))
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  if (!application.actions.supplement) return null

  const supply = async (index: number, name: string, commitment: boolean) => {
    setBusy(true)
    setError(null)
    try {
      let choice: Schemas['intake.MaterialChoiceIn']
      if (commitment) {
        choice = { index, commitment: true }
      } else {
        const picked = await Taro.chooseImage({ count: 1, sizeType: ['compressed'] })
        const stored = await uploadMaterial(application.id, picked.tempFilePaths[0], name)
        choice = { index, file_id: stored.id }
      }
      onDone(
        await api.post('/api/v1/applications/{application_id}/supplement', {
          path: { application_id: application.id },
          body: { materials: [choice] }
        })
      )
    } catch (e) {
      setError(errorText(e, zh.apply.failed))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Section title={zh.applications.supplement}>
      <Text className='hint'>{zh.applications.supplementHint}</Text>
      {application.tolerated_until ? (
        <Banner kind='warn'>
          {zh.applications.toleratedUntil}：{date(application.tolerated_until)}
        </Banner>
      ) : null}
      {(outstanding.length > 0 ? outstanding : application.materials).map((m) => (
        <View key={m.index} className='row'>
          <View className='row-main'>
            <Text className='row-title'>{m.name}</Text>
            {m.note ? <Text className='row-sub'>{m.note}</Text> : null}
          </View>
          {m.source === 'commitment' ? (
            <Action mini disabled={busy} onClick={() => void supply(m.index, m.name, true)}>
              {zh.apply.commitmentLabel}
            </Action>
          ) : (
            <Action mini disabled={busy} onClick={() => void supply(m.index, m.name, false)}>
              {zh.guide.sources.upload}
            </Action>
          )}
        </View>
      ))}
      {error ? <Banner kind='warn'>{error}</Banner> : null}
    </Section>
  )
}

function Rating({ application, onRated }: { application: Application; onRated: () => void }) {
  const [score, setScore] = useState(4) // index into zh.applications.scores: 5 非常满意
  const [tags, setTags] = useState<RatingTag[]>([])
  const [comment, setComment] = useState('')
  const [done, setDone] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  if (done) return <Banner kind='info'>{zh.applications.rated}</Banner>
  const submit = async () => {
    setBusy(true)
    setError(null)
    try {
      await api.post('/api/v1/applications/{application_id}/rating', {
        path: { application_id: application.id },
        body: { score: score + 1, tags, comment }
      })
      setDone(true)
      onRated() // read again: the application now says it was rated
    } catch (e) {
      setError(errorText(e, zh.apply.failed))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Section title={zh.applications.rate}>
      <PickerField
        id='rating-score'
        label={zh.applications.rateScore}
        options={zh.applications.scores}
        index={score}
        shown={zh.applications.scores[score]}
        onPick={setScore}
      />
      <View className='field' role='group' ariaRole='group' ariaLabel={zh.applications.rateTags}>
        <Text className='label'>{zh.applications.rateTags}</Text>
        <View>
          {RATING_TAGS.map((tag) => {
            const on = tags.includes(tag)
            return (
              <Action
                key={tag}
                mini
                kind={on ? 'primary' : 'plain'}
                pressed={on}
                onClick={() => setTags(on ? tags.filter((t) => t !== tag) : [...tags, tag])}
              >
                {tag}
              </Action>
            )
          })}
        </View>
      </View>
      <TextAreaField id='rating-comment' label={zh.applications.rateComment} value={comment} onChange={setComment} />
      {error ? <Banner kind='warn'>{error}</Banner> : null}
      <Action kind='primary' disabled={busy} onClick={() => void submit()}>
        {zh.applications.rateSubmit}
      </Action>
    </Section>
  )
}

export default function ApplicationPage() {
  const { params } = useRouter()
  const id = params.id ?? ''
  const app = useLoad(() => api.get('/api/v1/applications/{application_id}', { path: { application_id: id } }), [id])
  const [actionError, setActionError] = useState<string | null>(null)
  const a = app.data
  // Just filed (weapp only): offer the progress notices once; asking needs this new tap.
  const [offer] = useState(() => subscribeOffered(id))
  const status = a?.status
  const setData = app.setData
  useEffect(() => {
    if (!status || !IN_PROGRESS.includes(status)) return
    const until = Date.now() + FOLLOW_FOR_MS
    let stopped = false
    const timer = setInterval(() => {
      if (stopped || Date.now() > until) return
      api
        .get('/api/v1/applications/{application_id}', { path: { application_id: id } })
        .then((fresh) => {
          if (!stopped) setData(fresh)
        })
        .catch(() => undefined) // the next tick tries again; a lost session goes to login
    }, FOLLOW_EVERY_MS)
    return () => {
      stopped = true
      clearInterval(timer)
    }
  }, [id, status, setData])

  const withdraw = async () => {
    const { confirm } = await Taro.showModal({ title: zh.applications.withdraw, content: zh.applications.withdrawConfirm })
    if (!confirm) return
    try {
      app.setData(await api.post('/api/v1/applications/{application_id}/withdraw', { path: { application_id: id }, body: {} }))
      void Taro.showToast({ title: zh.applications.withdrawn, icon: 'success' })
    } catch (e) {
      setActionError(errorText(e, zh.apply.failed))
    }
  }

  return (
    <Screen title={zh.titles.application}>
      {app.loading && !a ? <Loading /> : null}
      {app.error ? <Failure message={app.error} onRetry={app.reload} /> : null}
      {a ? (
        <>
          <View className='section'>
            <Heading>{a.item_name}</Heading>
            <View className='inline'>
              <Tag type='primary'>{a.status_name}</Tag>
            </View>
            {a.status_reason ? (
              <Text className='row-sub'>
                {zh.applications.reason}：{a.status_reason}
              </Text>
            ) : null}
            {a.applicant.kind === 'company' ? (
              <Text className='row-sub'>{zh.applications.forCompany(a.applicant.id_number)}</Text>
            ) : null}
            <Text className='row-sub care-hide'>{a.department}</Text>
            <Text className='row-sub'>
              {zh.applications.submittedAt}：{dateTime(a.submitted_at)}
            </Text>
            {a.due_date ? (
              <Text className='row-sub'>
                {zh.applications.dueDate}：{date(a.due_date)}
              </Text>
            ) : null}
          </View>
          {offer ? (
            <SubscribeSection
              title={zh.subscribe.afterApply}
              onAnswered={clearSubscribeOffer}
            />
          ) : null}
          <Supplement application={a} onDone={app.setData} />
          <Section title={zh.applications.timeline}>
            {a.timeline.map((t, i) => (
              <View key={`${t.at}-${i}`} className='timeline-entry'>
                <Text className='row-title'>{t.to_status_name}</Text>
                {t.note ? <Text className='row-sub'>{t.note}</Text> : null}
                <Text className='row-sub'>{dateTime(t.at)}</Text>
              </View>
            ))}
          </Section>
          <View className='care-hide'>
            <Section title={zh.applications.materials}>
              {a.materials.map((m) => (
                <View key={m.index} className='row'>
                  <Text className='row-title'>{m.name}</Text>
                  <Text className='chip'>{m.status_name}</Text>
                </View>
              ))}
            </Section>
          </View>
          {a.actions.rate ? <Rating application={a} onRated={app.reload} /> : null}
          {a.rated ? <Banner kind='info'>{zh.applications.rated}</Banner> : null}
          {actionError ? <Banner kind='warn'>{actionError}</Banner> : null}
          {a.actions.withdraw ? (
            <Action kind='danger' onClick={() => void withdraw()}>
              {zh.applications.withdraw}
            </Action>
          ) : null}
        </>
      ) : null}
    </Screen>
  )
}
