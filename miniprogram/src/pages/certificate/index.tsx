import Taro, { useRouter } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { useMemo } from 'react'
import { api } from '../../api/client'
import { Action, Picture } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { date, dateTime } from '../../lib/format'
import { qrDataUrl } from '../../lib/qr'
import { useLoad } from '../../lib/useLoad'

export default function CertificatePage() {
  const { params } = useRouter()
  const id = params.id ?? ''
  const cert = useLoad(() => api.get('/api/v1/certificates/{certificate_id}', { path: { certificate_id: id } }), [id])
  const c = cert.data
  const qr = useMemo(() => (c ? qrDataUrl(c.qr_payload) : ''), [c])
  return (
    <Screen title={zh.titles.certificate}>
      {cert.loading ? <Loading /> : null}
      {cert.error ? <Failure message={cert.error} onRetry={cert.reload} /> : null}
      {c ? (
        <>
          <View className='section'>
            <Heading>{c.type_name}</Heading>
            <Text className='row-sub'>
              {zh.wallet.status}：{c.status}
            </Text>
            {c.status_reason ? <Banner kind='warn'>{c.status_reason}</Banner> : null}
            <Text className='row-sub'>
              {zh.wallet.issuer}：{c.issuer}
            </Text>
            <Text className='row-sub care-hide'>
              {zh.wallet.issuedAt}：{dateTime(c.issued_at)}
            </Text>
            <Text className='row-sub'>
              {zh.wallet.validFrom}：{date(c.valid_from)}
            </Text>
            <Text className='row-sub'>
              {zh.wallet.validUntil}：{c.valid_until ? date(c.valid_until) : zh.wallet.longTerm}
            </Text>
          </View>
          <Section title={zh.wallet.qr}>
            <Picture className='qr' src={qr} alt={zh.wallet.qrLabel(c.type_name)} />
            <Text className='hint'>{zh.wallet.qrHint}</Text>
            <Action onClick={() => void Taro.navigateTo({ url: `/pages/verify/index?qr=${encodeURIComponent(c.qr_payload)}` })}>
              {zh.verify.open}
            </Action>
          </Section>
        </>
      ) : null}
    </Screen>
  )
}
