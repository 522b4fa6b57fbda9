import Taro from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useEffect, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Action, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { mobileProblem } from '../../lib/validate'

type Sent = Schemas['notify.PhoneCodeOut']

/** 手机号: give a number for SMS notices, type back the 6-digit code sent to it. */
export default function PhonePage() {
  const [mobile, setMobile] = useState('')
  const [code, setCode] = useState('')
  const [sent, setSent] = useState<Sent | null>(null)
  const [wait, setWait] = useState(0)
  const [bound, setBound] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  useEffect(() => {
    if (!session.loggedIn()) void Taro.reLaunch({ url: LOGIN_PAGE })
  }, [])

  // The resend countdown, one second at a time.
  useEffect(() => {
    if (wait <= 0) return undefined
    const timer = setTimeout(() => setWait((s) => s - 1), 1000)
    return () => clearTimeout(timer)
  }, [wait])

  const send = async () => {
    if (busy || wait > 0) return
    const problem = mobileProblem(mobile)
    if (problem) {
      setError(problem)
      return
    }
    setBusy(true)
    setError(null)
    try {
      const answer = await api.post('/api/v1/me/phone', { body: { mobile: mobile.trim() } })
      setSent(answer)
      setWait(answer.resend_after)
      setBound(null)
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setBusy(false)
    }
  }

  const verify = async () => {
    if (busy) return
    if (!/^\d{6}$/.test(code.trim())) {
      setError(zh.phone.codeMissing)
      return
    }
    setBusy(true)
    setError(null)
    try {
      const prefs = await api.post('/api/v1/me/phone/verify', { body: { code: code.trim() } })
      setBound(prefs.phone_masked ?? sent?.phone_masked ?? null)
      setSent(null)
      setCode('')
      setWait(0)
      void Taro.showToast({ title: zh.phone.done, icon: 'success' })
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Screen title={zh.titles.phone}>
      <View className='section care-hide'>
        <Text className='hint'>{zh.phone.hint}</Text>
      </View>
      {bound ? <Banner kind='info'>{zh.phone.bound(bound)}</Banner> : null}
      <Section title={zh.titles.phone}>
        <TextField
          id='phone-mobile'
          label={zh.phone.mobileLabel}
          kind='number'
          maxlength={11}
          placeholder={zh.phone.mobilePlaceholder}
          value={mobile}
          onChange={setMobile}
        />
        <Action disabled={busy || wait > 0} onClick={() => void send()}>
          {wait > 0 ? zh.phone.resendIn(wait) : sent ? zh.phone.resend : zh.phone.send}
        </Action>
        {sent ? (
          <>
            <Banner kind='info'>{zh.phone.sent(sent.phone_masked, Math.max(1, Math.round(sent.expires_in / 60)))}</Banner>
            {sent.test_mode ? (
              <Banner kind='dev'>{sent.test_code ? zh.phone.testCode(sent.test_code) : zh.phone.testMode}</Banner>
            ) : null}
            <TextField
              id='phone-code'
              label={zh.phone.codeLabel}
              kind='number'
              maxlength={6}
              placeholder={zh.phone.codePlaceholder}
              value={code}
              onChange={setCode}
            />
            <Action kind='primary' disabled={busy} onClick={() => void verify()}>
              {busy ? zh.phone.verifying : zh.phone.verify}
            </Action>
          </>
        ) : null}
        {error ? <Banner kind='warn'>{error}</Banner> : null}
      </Section>
    </Screen>
  )
}
