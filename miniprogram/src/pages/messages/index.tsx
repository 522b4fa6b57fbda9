import Taro, { useDidShow } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { useEffect, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { Action, Link, SwitchField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { dateTime } from '../../lib/format'
import { SubscribeSection } from '../../components/Subscribe'

type Notification = Schemas['notify.NotificationOut']

export default function MessagesPage() {
  const [unreadOnly, setUnreadOnly] = useState(false)
  const [items, setItems] = useState<Notification[]>([])
  const [next, setNext] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  const [error, setError] = useState<string | null>(null)

  const load = async (before: string | null) => {
    setLoading(true)
    setError(null)
    try {
      const inbox = await api.get('/api/v1/messages', {
        query: { unread: unreadOnly || undefined, before: before ?? undefined, limit: 20 }
      })
      setItems(before ? (prev) => [...prev, ...inbox.items] : inbox.items)
      setNext(inbox.next_before)
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setLoading(false)
    }
  }

  useEffect(() => {
    void load(null)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [unreadOnly])
  useDidShow(() => {
    if (items.length > 0) void load(null)
  })

  const open = async (n: Notification) => {
    if (!n.read_at) {
      try {
        const read = await api.post('/api/v1/messages/{message_id}/read', { path: { message_id: n.id } })
        if (read.marked > 0) {
          setItems((prev) => prev.map((m) => (m.id === n.id ? { ...m, read_at: new Date().toISOString() } : m)))
        }
      } catch {
        // marking read is a courtesy: the message is shown either way
      }
    }
    if (n.application_id) void Taro.navigateTo({ url: `/pages/application/index?id=${n.application_id}` })
  }

  return (
    <Screen title={zh.titles.messages}>
      <View className='section'>
        <SwitchField id='messages-unread' label={zh.messages.unreadOnly} checked={unreadOnly} onChange={setUnreadOnly} />
      </View>
      {error ? <Failure message={error} onRetry={() => void load(null)} /> : null}
      {!loading && !error && items.length === 0 ? <Empty text={zh.messages.empty} /> : null}
      {items.length > 0 ? (
        <View className='section'>
          {items.map((n) => (
            <Link key={n.id} className='row' onOpen={() => void open(n)}>
              <View className='row-main'>
                <Text className='row-title'>{n.title}</Text>
                <Text className='row-sub'>{n.body}</Text>
                <Text className='row-sub care-hide'>{dateTime(n.created_at)}</Text>
              </View>
              <Tag type={n.read_at ? 'default' : 'danger'}>{n.read_at ? zh.messages.read : zh.messages.unread}</Tag>
            </Link>
          ))}
        </View>
      ) : null}
      {loading ? <Loading /> : null}
      {!loading && next ? (
        <Action onClick={() => void load(next)}>
          {zh.messages.more}
        </Action>
      ) : null}
      <SubscribeSection title={zh.subscribe.heading} />
    </Screen>
  )
}
