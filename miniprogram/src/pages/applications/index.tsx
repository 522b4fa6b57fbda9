import Taro, { useDidShow } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { api } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Link } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { dateTime } from '../../lib/format'
import { useLoad } from '../../lib/useLoad'

export default function ApplicationsPage() {
  const list = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return []
    }
    return api.get('/api/v1/applications')
  })
  useDidShow(() => {
    if (list.data) list.reload()
  })
  return (
    <Screen title={zh.titles.applications}>
      {list.loading && !list.data ? <Loading /> : null}
      {list.error ? <Failure message={list.error} onRetry={list.reload} /> : null}
      {list.data && list.data.length === 0 ? <Empty text={zh.applications.empty} /> : null}
      {list.data && list.data.length > 0 ? (
        <View className='section'>
          {list.data.map((a) => (
            <Link
              key={a.id}
              className='row'
              onOpen={() => void Taro.navigateTo({ url: `/pages/application/index?id=${a.id}` })}
            >
              <View className='row-main'>
                <Text className='row-title'>{a.item_name}</Text>
                <Text className='row-sub care-hide'>{a.department}</Text>
                <Text className='row-sub'>
                  {a.submitted_at ? `${zh.applications.submittedAt} ${dateTime(a.submitted_at)}` : `${zh.applications.createdAt} ${dateTime(a.created_at)}`}
                </Text>
              </View>
              <Tag type='primary'>{a.status_name}</Tag>
            </Link>
          ))}
        </View>
      ) : null}
    </Screen>
  )
}
