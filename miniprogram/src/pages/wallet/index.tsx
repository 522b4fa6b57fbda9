import Taro, { useDidShow } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { api } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Link } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { date } from '../../lib/format'
import { useLoad } from '../../lib/useLoad'

// Certificate statuses are the sharing service's Chinese words (有效, 暂扣, 撤销 …).
const VALID = '有效'

export default function WalletPage() {
  const wallet = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return []
    }
    return api.get('/api/v1/certificates')
  })
  useDidShow(() => {
    if (wallet.data) wallet.reload()
  })
  return (
    <Screen title={zh.titles.wallet}>
      {wallet.loading && !wallet.data ? <Loading /> : null}
      {wallet.error ? <Failure message={wallet.error} onRetry={wallet.reload} /> : null}
      {wallet.data && wallet.data.length === 0 ? <Empty text={zh.wallet.empty} /> : null}
      {wallet.data && wallet.data.length > 0 ? (
        <View className='section'>
          {wallet.data.map((c) => (
            <Link
              key={c.id}
              className='row'
              onOpen={() => void Taro.navigateTo({ url: `/pages/certificate/index?id=${c.id}` })}
            >
              <View className='row-main'>
                <Text className='row-title'>{c.type_name}</Text>
                <Text className='row-sub care-hide'>{c.issuer}</Text>
                <Text className='row-sub'>
                  {zh.wallet.validUntil}：{c.valid_until ? date(c.valid_until) : zh.wallet.longTerm}
                </Text>
              </View>
              <Tag type={c.status === VALID ? 'success' : 'warning'}>{c.status}</Tag>
            </Link>
          ))}
        </View>
      ) : null}
    </Screen>
  )
}
