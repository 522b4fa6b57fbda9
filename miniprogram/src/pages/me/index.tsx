import Taro, { useDidShow } from '@tarojs/taro'
import { Button, Label, Switch, Text, View } from '@tarojs/components'
import { Cell } from '../../components/nut'
import { api } from '../../api/client'
import { logout } from '../../api/auth'
import { LOGIN_PAGE, session } from '../../api/session'
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
        <View className='row'>
          <View className='row-main'>
            <Label className='label' for='care-mode'>
              {zh.me.care}
            </Label>
            <Text className='hint'>{zh.me.careHint}</Text>
          </View>
          <Switch id='care-mode' checked={care} ariaLabel={zh.me.care} onChange={(e) => setCare(e.detail.value)} />
        </View>
      </View>
      <View className='section'>
        <Cell title={zh.me.messages} onClick={() => void Taro.navigateTo({ url: '/pages/messages/index' })} />
        <Cell title={zh.me.search} onClick={() => void Taro.navigateTo({ url: '/pages/search/index' })} />
      </View>
      <View className='section'>
        <Cell title={zh.me.realName} onClick={() => go('/pages/realname/index')} />
        <Cell
          title={zh.me.companiesEntry}
          description={zh.me.actingAs(acting?.company_name ?? null)}
          onClick={() => go('/pages/companies/index')}
        />
        <Cell title={zh.me.dataUsage} onClick={() => go('/pages/data-usage/index')} />
        <Cell title={zh.me.phone} onClick={() => go('/pages/phone/index')} />
        <Cell title={zh.me.verify} onClick={() => go('/pages/verify/index')} />
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
      <Button className='btn btn-danger' onClick={() => void leave()}>
        {zh.me.logout}
      </Button>
    </Screen>
  )
}
