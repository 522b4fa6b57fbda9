import Taro from '@tarojs/taro'
import { Text } from '@tarojs/components'
import { useState } from 'react'
import { errorText } from '../api/client'
import { zh } from '../i18n/zh'
import { askSubscriptions } from '../lib/subscribe'
import { Action } from './controls'
import { Banner, Section } from './Status'

/**
 * 订阅通知: a button that asks WeChat for subscription consent on the tap (the only moment
 * WeChat allows it) and reports the answer; in H5 it says this is the mini-program's.
 */
export function SubscribeSection({ title, onAnswered }: { title: string; onAnswered?: () => void }) {
  const [note, setNote] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const ask = () => {
    if (busy) return
    // Called synchronously in the tap: WeChat refuses the request after an await.
    const asking = askSubscriptions()
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
      <Text className='hint care-hide'>{zh.subscribe.hint}</Text>
      <Action disabled={busy} onClick={ask}>
        {zh.subscribe.button}
      </Action>
      {note ? <Banner kind='info'>{note}</Banner> : null}
    </Section>
  )
}
