import Taro from '@tarojs/taro'
import { Text } from '@tarojs/components'
import { useState } from 'react'
import { errorText } from '../api/client'
import { zh } from '../i18n/zh'
import { IN_WEAPP } from '../lib/platform'
import { askSubscriptions, subscriptionTemplates } from '../lib/subscribe'
import { useLoad } from '../lib/useLoad'
import { Action } from './controls'
import { Banner, Failure, Section } from './Status'

/**
 * 订阅通知: a button that asks WeChat for subscription consent on the tap (the only moment
 * WeChat allows it) and reports the answer; in H5 it says this is the mini-program's.
 */
export function SubscribeSection({ title, onAnswered }: { title: string; onAnswered?: () => void }) {
  const [note, setNote] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  // Read before the tap (the mini-program only: H5 asks nothing).
  const templates = useLoad(async () => (IN_WEAPP ? subscriptionTemplates() : []))
  const offered = templates.data ?? []

  const ask = () => {
    if (busy) return
    if (IN_WEAPP && offered.length === 0) {
      setNote(zh.subscribe.unavailable)
      return
    }
    // Called synchronously in the tap: WeChat refuses the request after an await.
    const asking = askSubscriptions(offered)
    if (!asking) {
      setNote(zh.subscribe.h5)
      return
    }
    setBusy(true)
    asking
      .then((accepted) => {
        setNote(accepted > 0 ? zh.subscribe.accepted(accepted) : zh.subscribe.none)
        if (accepted > 0) void Taro.showToast({ title: zh.subscribe.accepted(accepted), icon: 'success' })
        onAnswered?.()
      })
      .catch((e: unknown) => setNote(errorText(e, zh.subscribe.failed)))
      .finally(() => setBusy(false))
  }

  return (
    <Section title={title}>
      <Text className='hint care-hide'>
        {offered.length > 0 ? zh.subscribe.hintWith(offered.map((t) => t.label)) : zh.subscribe.hint}
      </Text>
      {templates.error ? <Failure message={templates.error} onRetry={templates.reload} /> : null}
      <Action disabled={busy || templates.loading} onClick={ask}>
        {zh.subscribe.button}
      </Action>
      {note ? <Banner kind='info'>{note}</Banner> : null}
    </Section>
  )
}
