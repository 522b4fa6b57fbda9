import Taro, { useRouter } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useEffect, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { Action, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Heading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { date, dateTime } from '../../lib/format'
import { IN_WEAPP } from '../../lib/platform'

type Verification = Schemas['sharing.VerifyOut']

const QR_PREFIX = 'WBCERT:'

/**
 * 证照核验 (public, no login): the certificate QR's payload (WBCERT:1:<id>:<kid>:<signature>,
 * as the certificate page draws it) or a certificate id, from the page's `qr` / `id` query
 * parameter, typed, or scanned in the mini-program.
 */
export default function VerifyPage() {
  const { params } = useRouter()
  const initial = decodeURIComponent(params.qr ?? params.id ?? '')
  const [text, setText] = useState(initial)
  const [result, setResult] = useState<Verification | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const check = async (value: string) => {
    const v = value.trim()
    if (!v) {
      setError(zh.verify.inputMissing)
      return
    }
    setBusy(true)
    setError(null)
    setResult(null)
    try {
      const query = v.toUpperCase().startsWith(QR_PREFIX) ? { qr: v } : { id: v }
      // The OpenAPI document gives this GET a JSON body (sharing's VerifyIn, which the gateway
      // builds from the query itself): an empty one is sent, which GET puts nowhere.
      setResult(await api.get('/api/v1/certificates/verify', { query }))
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setBusy(false)
    }
  }

  useEffect(() => {
    if (initial) void check(initial)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [])

  const scan = async () => {
    try {
      const scanned = await Taro.scanCode({ onlyFromCamera: false, scanType: ['qrCode'] })
      setText(scanned.result)
      void check(scanned.result)
    } catch {
      // scanning cancelled: nothing to do
    }
  }

  return (
    <Screen title={zh.titles.verify}>
      <View className='section'>
        <Text className='hint care-hide'>{zh.verify.hint}</Text>
        <TextField
          id='verify-input'
          label={zh.verify.inputLabel}
          maxlength={512}
          placeholder={zh.verify.inputPlaceholder}
          value={text}
          onChange={setText}
        />
        {IN_WEAPP ? (
          <Action onClick={() => void scan()}>
            {zh.verify.scan}
          </Action>
        ) : null}
        <Action kind='primary' disabled={busy} onClick={() => void check(text)}>
          {busy ? zh.verify.checking : zh.verify.submit}
        </Action>
        {error ? <Banner kind='warn'>{error}</Banner> : null}
      </View>
      {result ? (
        <Section title={zh.verify.result}>
          <View role='status' ariaRole='status'>
            <Heading>{zh.verify.verdicts[result.verdict] ?? result.verdict}</Heading>
          </View>
          {result.verdict !== 'valid' ? <Banner kind='warn'>{result.reason}</Banner> : <Text className='row-sub care-hide'>{result.reason}</Text>}
          {result.type_name ? (
            <Text className='row-sub'>
              {zh.verify.typeName}：{result.type_name}
            </Text>
          ) : null}
          {result.holder_name ? (
            <Text className='row-sub'>
              {zh.verify.holder}：{result.holder_name}
            </Text>
          ) : null}
          {result.issuer ? (
            <Text className='row-sub'>
              {zh.verify.issuer}：{result.issuer}
            </Text>
          ) : null}
          {result.issued_at ? (
            <Text className='row-sub care-hide'>
              {zh.verify.issuedAt}：{dateTime(result.issued_at)}
            </Text>
          ) : null}
          {result.certificate_id ? (
            <Text className='row-sub'>
              {zh.verify.validUntil}：{result.valid_until ? date(result.valid_until) : zh.wallet.longTerm}
            </Text>
          ) : null}
          {result.status ? (
            <Text className='row-sub care-hide'>
              {zh.verify.status}：{result.status}
            </Text>
          ) : null}
        </Section>
      ) : null}
    </Screen>
  )
}
