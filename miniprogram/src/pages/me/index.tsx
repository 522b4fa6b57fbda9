import Taro from '@tarojs/taro'
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
