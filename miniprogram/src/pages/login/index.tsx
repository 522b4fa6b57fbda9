import Taro from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useState } from 'react'
import { errorText } from '../../api/client'
import { loginForDevelopment, loginWithWeChat } from '../../api/auth'
import { session } from '../../api/session'
import { Action, PickerField, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Heading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { PERSONAS } from '../../lib/personas'

const TAB_PAGES = ['/pages/home/index', '/pages/applications/index', '/pages/wallet/index', '/pages/me/index']

/** After logging in: back where the session ended (a draft form restores itself there). */
function leave() {
  const target = session.takeReturnTo()
  if (target && !TAB_PAGES.includes(target.split('?')[0])) {
    void Taro.reLaunch({ url: target })
  } else {
    void Taro.switchTab({ url: target?.split('?')[0] ?? '/pages/home/index' })
  }
}

function DevLogin() {
  const [index, setIndex] = useState(0)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const persona = PERSONAS[index]
  const [openid, setOpenid] = useState(`dev-${persona.key}`)

  const submit = async () => {
    setBusy(true)
    setError(null)
    try {
      await loginForDevelopment({
        openid,
        assurance: 'real_person',
        name: persona.name,
        id_number: persona.idNumber
      })
      leave()
    } catch (e) {
      setError(errorText(e, zh.login.failed))
    } finally {
      setBusy(false)
    }
  }

  return (
    <View className='section'>
      <Banner kind='dev'>{zh.login.devBanner}</Banner>
      <Text className='hint'>{zh.login.devHint}</Text>
      <PickerField
        id='persona'
        label={zh.login.persona}
        options={PERSONAS.map((p) => `${p.name}（${p.idNumber.slice(0, 6)}…）`)}
        index={index}
        shown={persona.name}
        onPick={(next) => {
          setIndex(next)
          setOpenid(`dev-${PERSONAS[next].key}`)
        }}
      />
      <TextField id='openid' label={zh.login.openid} maxlength={128} value={openid} onChange={setOpenid} />
      {error ? <Banner kind='warn'>{error}</Banner> : null}
      <Action kind='primary' disabled={busy || !openid} onClick={submit}>
        {zh.login.devSubmit}
      </Action>
    </View>
  )
}

function WeChatLogin() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const submit = async () => {
    setBusy(true)
    setError(null)
    try {
      await loginWithWeChat()
      leave()
    } catch (e) {
      setError(errorText(e, zh.login.failed))
    } finally {
      setBusy(false)
    }
  }
  return (
    <View className='section'>
      <Text className='hint'>{zh.login.wechatHint}</Text>
      {error ? <Banner kind='warn'>{error}</Banner> : null}
      <Action kind='primary' disabled={busy} onClick={submit}>
        {zh.login.wechat}
      </Action>
    </View>
  )
}

export default function LoginPage() {
  const [expired] = useState(() => session.endedUnderway())
  return (
    <Screen title={zh.titles.login}>
      <Heading>{zh.login.heading}</Heading>
      {expired ? <Banner kind='info'>{zh.login.expired}</Banner> : null}
      {process.env.TARO_ENV === 'weapp' ? <WeChatLogin /> : <DevLogin />}
    </Screen>
  )
}
