import Taro, { useDidShow } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { useState } from 'react'
import { api } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { CellLink, Link, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Failure, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useLoad } from '../../lib/useLoad'
import { useCare } from '../../state/care'


function Degraded({ part }: { part: string }) {
  return (
    <Banner kind='warn'>{zh.home.degradedPart(zh.home.parts[part] ?? part)}</Banner>
  )
}

export default function HomePage() {
  const { care } = useCare()
  const [query, setQuery] = useState('')
  const home = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return null
    }
    return api.get('/api/v1/home')
  })
  useDidShow(() => {
    if (home.data) home.reload()
  })

  const search = () => {
    void Taro.navigateTo({ url: `/pages/search/index?q=${encodeURIComponent(query)}` })
  }

  const data = home.data
  const degraded = new Set(data?.degraded ?? [])
  const hot = data?.hot_items ?? []
  const open = data?.my_open_applications ?? []

  return (
    <Screen title={zh.titles.home}>
      <View className='section'>
        <TextField
          id='home-search'
          label={zh.home.searchLabel}
          kind='search'
          placeholder={zh.home.searchPlaceholder}
          value={query}
          onChange={setQuery}
          onConfirm={search}
        />
      </View>
      {home.loading && !data ? <Loading /> : null}
      {home.error ? <Failure message={home.error} onRetry={home.reload} /> : null}
      {data ? (
        <>
          <Section title={zh.titles.messages}>
            {degraded.has('unread_messages') ? (
              <Degraded part='unread_messages' />
            ) : (
              <CellLink title={data.unread_messages > 0 ? zh.home.unread(data.unread_messages) : zh.home.noUnread} onOpen={() => void Taro.navigateTo({ url: '/pages/messages/index' })} />
            )}
            {degraded.has('wallet_count') ? (
              <Degraded part='wallet_count' />
            ) : (
              <CellLink className='care-hide' title={zh.home.wallet(data.wallet_count)} onOpen={() => void Taro.switchTab({ url: '/pages/wallet/index' })} />
            )}
          </Section>
          <Section title={zh.home.myOpen}>
            {degraded.has('my_open_applications') ? <Degraded part='my_open_applications' /> : null}
            {open.length === 0 && !degraded.has('my_open_applications') ? (
              <Text className='hint'>{zh.applications.empty}</Text>
            ) : null}
            {open.map((a) => (
              <Link
                key={a.id}
                className='row'
                onOpen={() => void Taro.navigateTo({ url: `/pages/application/index?id=${a.id}` })}
              >
                <View className='row-main'>
                  <Text className='row-title'>{a.item_name}</Text>
                  <Text className='row-sub'>{a.department}</Text>
                </View>
                <Tag type='primary'>{a.status_name}</Tag>
              </Link>
            ))}
          </Section>
          <Section title={zh.home.hotItems}>
            {degraded.has('hot_items') ? <Degraded part='hot_items' /> : null}
            <View className='grid'>
              {hot.slice(0, care ? 4 : 8).map((item) => (
                <Link
                  key={item.item_id}
                  className='grid-cell'
                  onOpen={() =>
                    void Taro.navigateTo({
                      url: `/pages/guide/index?code=${encodeURIComponent(item.implementing_code)}`
                    })
                  }
                >
                  <Text className='row-title'>{item.name}</Text>
                  {item.auto_approval ? <Text className='chip care-hide'>{zh.search.auto}</Text> : null}
                </Link>
              ))}
            </View>
            <CellLink title={zh.home.allServices} onOpen={() => void Taro.navigateTo({ url: '/pages/search/index' })} />
          </Section>
        </>
      ) : null}
    </Screen>
  )
}
