import Taro from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useState } from 'react'
import { api, errorText } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Action, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { faceVerificationAvailable, requestFacialVerify } from '../../lib/face'
import { IN_WEAPP } from '../../lib/platform'
import { useLoad } from '../../lib/useLoad'
import { idNumberProblem, nameProblem } from '../../lib/validate'

/** 实名 (name + resident ID checked against the register) and 实人 (WeChat face verification). */
export default function RealNamePage() {
  const me = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return null
    }
    return api.get('/api/v1/me')
  })
  const m = me.data
  const [name, setName] = useState('')
  const [idNumber, setIdNumber] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [faceError, setFaceError] = useState<string | null>(null)
  const [faceBusy, setFaceBusy] = useState(false)

  const bind = async () => {
    if (busy) return
    const problem = nameProblem(name) ?? idNumberProblem(idNumber)
    if (problem) {
      setError(problem)
      return
    }
    setBusy(true)
    setError(null)
    try {
      // A new token pair: the old access token still says "WeChat only" until it expires.
      const tokens = await api.post('/api/v1/me/real-name', {
        body: { name: name.trim(), id_number: idNumber.trim().toUpperCase() }
      })
      session.store(tokens)
      setName('')
      setIdNumber('')
      void Taro.showToast({ title: zh.realName.done, icon: 'success' })
      me.reload()
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setBusy(false)
    }
  }

  const face = async () => {
    if (faceBusy) return
    if (!faceVerificationAvailable()) {
      setFaceError(zh.realName.personUnsupported)
      return
    }
    setFaceBusy(true)
    setFaceError(null)
    try {
      const started = await api.post('/api/v1/me/real-person/start')
      try {
        await requestFacialVerify(started.verify_id)
      } catch {
        setFaceError(zh.realName.personCancelled)
        return
      }
      const tokens = await api.post('/api/v1/me/real-person', { body: { verify_id: started.verify_id } })
      session.store(tokens)
      void Taro.showToast({ title: zh.realName.personOk, icon: 'success' })
      me.reload()
    } catch (e) {
      setFaceError(errorText(e, zh.common.failed))
    } finally {
      setFaceBusy(false)
    }
  }

  return (
    <Screen title={zh.titles.realName}>
      {me.loading ? <Loading /> : null}
      {me.error ? <Failure message={me.error} onRetry={me.reload} /> : null}
      {m ? (
        <View className='section'>
          <Heading>{zh.realName.status}</Heading>
          <Text className='row-title'>{zh.me.assurance[m.assurance] ?? m.assurance}</Text>
          {m.name_masked ? <Text className='row-sub'>{m.name_masked}</Text> : null}
          {m.id_number_masked ? (
            <Text className='row-sub'>
              {zh.me.idNumber}：{m.id_number_masked}
            </Text>
          ) : null}
        </View>
      ) : null}
      {m && m.assurance === 'wechat' ? (
        <Section title={zh.realName.heading}>
          <Text className='hint care-hide'>{zh.realName.hint}</Text>
          <TextField
            id='realname-name'
            label={zh.realName.nameLabel}
            maxlength={50}
            placeholder={zh.realName.namePlaceholder}
            value={name}
            onChange={setName}
          />
          <TextField
            id='realname-id'
            label={zh.realName.idLabel}
            kind='idcard'
            maxlength={18}
            placeholder={zh.realName.idPlaceholder}
            value={idNumber}
            onChange={setIdNumber}
          />
          {error ? <Banner kind='warn'>{error}</Banner> : null}
          <Action kind='primary' disabled={busy} onClick={() => void bind()}>
            {busy ? zh.realName.submitting : zh.realName.submit}
          </Action>
        </Section>
      ) : null}
      {m && m.assurance !== 'wechat' ? <Banner kind='info'>{zh.realName.alreadyRealName}</Banner> : null}
      {m ? (
        <Section title={zh.realName.personHeading}>
          <Text className='hint care-hide'>{zh.realName.personHint}</Text>
          {m.assurance === 'real_person' ? <Text className='row-title'>{zh.realName.personDone}</Text> : null}
          {m.assurance === 'wechat' ? <Text className='row-sub'>{zh.realName.personNeedsRealName}</Text> : null}
          {m.assurance === 'real_name' && !IN_WEAPP ? <Banner kind='info'>{zh.realName.personH5}</Banner> : null}
          {m.assurance === 'real_name' && IN_WEAPP ? (
            <>
              {faceError ? <Banner kind='warn'>{faceError}</Banner> : null}
              <Action kind='primary' disabled={faceBusy} onClick={() => void face()}>
                {faceBusy ? zh.realName.personStarting : zh.realName.personStart}
              </Action>
            </>
          ) : null}
        </Section>
      ) : null}
    </Screen>
  )
}
