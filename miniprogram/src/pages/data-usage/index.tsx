import Taro from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useEffect, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Action } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { dateTime } from '../../lib/format'

type DataUse = Schemas['sharing.DataUseOut']

/** 谁用了我的数据: every lookup of my data, newest first, paged by `before`. */
export default function DataUsagePage() {
  const [items, setItems] = useState<DataUse[]>([])
  const [next, setNext] = useState<number | null>(null)
  const [loading, setLoading] = useState(true)
  const [error, setError] = useState<string | null>(null)

  const load = async (before: number | null) => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return
    }
    setLoading(true)
    setError(null)
    try {
      const page = await api.get('/api/v1/data-usage', { query: { limit: 20, before: before ?? undefined } })
      setItems(before !== null ? (prev) => [...prev, ...page.items] : page.items)
      setNext(page.next_before)
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setLoading(false)
    }
  }

  useEffect(() => {
    void load(null)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [])

  return (
    <Screen title={zh.titles.dataUsage}>
      <View className='section care-hide'>
        <Text className='hint'>{zh.dataUsage.hint}</Text>
      </View>
      {error ? <Failure message={error} onRetry={() => void load(null)} /> : null}
      {!loading && !error && items.length === 0 ? <Empty text={zh.dataUsage.empty} /> : null}
      {items.length > 0 ? (
        <View className='section' role='list' ariaRole='list'>
          {items.map((u) => (
            <View key={u.seq} className='row' role='listitem' ariaRole='listitem'>
              <View className='row-main'>
                <Text className='row-title'>{u.dataset_name}</Text>
                <Text className='row-sub'>
                  {zh.dataUsage.who}：{u.used_by}
                </Text>
                {u.department ? (
                  <Text className='row-sub care-hide'>
                    {zh.dataUsage.department}：{u.department}
                    {u.role ? ` · ${u.role}` : ''}
                  </Text>
                ) : null}
                <Text className='row-sub'>
                  {zh.dataUsage.when}：{dateTime(u.at)}
                </Text>
                <Text className='row-sub'>
                  {zh.dataUsage.forItem}：{u.item_name ?? u.item_code}
                </Text>
                {u.fields.length > 0 ? (
                  <Text className='row-sub care-hide'>
                    {zh.dataUsage.fields}：{u.field_titles.join('、')}
                  </Text>
                ) : null}
                <Text className='row-sub care-hide'>
                  {zh.dataUsage.provider}：{u.provider} · {zh.dataUsage.outcome}：{zh.dataUsage.outcomes[u.outcome] ?? u.outcome}
                </Text>
                {u.application_id ? (
                  <Action mini onClick={() => void Taro.navigateTo({ url: `/pages/application/index?id=${u.application_id}` })}>
                    {zh.dataUsage.application}
                  </Action>
                ) : null}
              </View>
            </View>
          ))}
        </View>
      ) : null}
      {loading ? <Loading /> : null}
      {!loading && next !== null ? (
        <Action onClick={() => void load(next)}>
          {zh.dataUsage.more}
        </Action>
      ) : null}
    </Screen>
  )
}
