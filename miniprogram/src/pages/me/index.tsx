import Taro, { useDidShow } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { api } from '../../api/client'
import { logout } from '../../api/auth'
import { LOGIN_PAGE, session } from '../../api/session'
import { Action, CellLink, SwitchField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useLoad } from '../../lib/useLoad'
import { useCare } from '../../state/care'
import { actingFor } from '../../lib/acting'
import { useState } from 'react'

export default function MePage() {
  const { care, setCare } = useCare()
  const me = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return null
    }
    return api.get('/api/v1/me')
  })
  const m = me.data
  const [acting, setActing] = useState(() => actingFor())
  useDidShow(() => setActing(actingFor()))
  const go = (url: string) => void Taro.navigateTo({ url })

  const leave = async () => {
    await logout().catch(() => undefined)
    void Taro.reLaunch({ url: LOGIN_PAGE })
  }

  return (
    <Screen title={zh.titles.me}>
      {me.loading ? <Loading /> : null}
      {me.error ? <Failure message={me.error} onRetry={me.reload} /> : null}
      {m ? (
        <View className='section'>
          <Heading>{m.name_masked ?? zh.me.heading}</Heading>
          <Text className='row-sub'>{zh.me.assurance[m.assurance] ?? m.assurance}</Text>
          {m.id_number_masked ? (
            <Text className='row-sub'>
              {zh.me.idNumber}：{m.id_number_masked}
            </Text>
          ) : null}
        </View>
      ) : null}
      <View className='section'>
        <SwitchField id='care-mode' label={zh.me.care} hint={zh.me.careHint} checked={care} onChange={setCare} />
      </View>
      <View className='section'>
        <CellLink title={zh.me.messages} onOpen={() => void Taro.navigateTo({ url: '/pages/messages/index' })} />
        <CellLink title={zh.me.search} onOpen={() => void Taro.navigateTo({ url: '/pages/search/index' })} />
      </View>
      <View className='section'>
        <CellLink title={zh.me.realName} onOpen={() => go('/pages/realname/index')} />
        <CellLink title={zh.me.companiesEntry} description={zh.me.actingAs(acting?.company_name ?? null)} onOpen={() => go('/pages/companies/index')} />
        <CellLink title={zh.me.dataUsage} onOpen={() => go('/pages/data-usage/index')} />
        <CellLink title={zh.me.phone} onOpen={() => go('/pages/phone/index')} />
        <CellLink title={zh.me.verify} onOpen={() => go('/pages/verify/index')} />
      </View>
      {m && (m.companies ?? []).length > 0 ? (
        <View className='care-hide'>
          <Section title={zh.me.companies}>
            {(m.companies ?? []).map((c) => (
              <Text key={c.uscc} className='row-title'>
                {c.company_name}
              </Text>
            ))}
          </Section>
        </View>
      ) : null}
      <Action kind='danger' onClick={() => void leave()}>
        {zh.me.logout}
      </Action>
    </Screen>
  )
}
