import Taro, { useRouter } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { api, type Schemas } from '../../api/client'
import { Action, Link } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Failure, Heading, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useLoad } from '../../lib/useLoad'
import { materialSource } from '../../lib/format'

type Material = Schemas['catalog.Material']

function MaterialRow({ material }: { material: Material }) {
  return (
    <View className='row'>
      <View className='row-main'>
        <Text className='row-title'>{material.name}</Text>
        {material.description ? <Text className='row-sub care-hide'>{material.description}</Text> : null}
        {material.condition ? <Text className='row-sub'>{material.condition}</Text> : null}
        {(material.originals ?? 0) + (material.copies ?? 0) > 0 ? (
          <Text className='row-sub care-hide'>{zh.guide.copies(material.originals ?? 0, material.copies ?? 0)}</Text>
        ) : null}
        {material.may_be_missing ? (
          <Text className='row-sub'>{zh.guide.mayBeMissing(material.supplement_days ?? null)}</Text>
        ) : null}
      </View>
      <View>
        <Tag type={material.source && material.source !== 'upload' ? 'success' : 'default'}>
          {materialSource(material.source)}
        </Tag>
        {material.required === false ? <Text className='chip'>{zh.common.optional}</Text> : null}
      </View>
    </View>
  )
}

export default function GuidePage() {
  const { params } = useRouter()
  const code = decodeURIComponent(params.code ?? '')
  const item = useLoad(() => api.get('/api/v1/items/{code}', { path: { code } }), [code])
  const content = item.data?.content

  return (
    <Screen title={zh.titles.guide}>
      {item.loading ? <Loading /> : null}
      {item.error ? <Failure message={item.error} onRetry={item.reload} /> : null}
      {content ? (
        <>
          <View className='section'>
            <Heading>{content.name}</Heading>
            <Text className='row-sub'>
              {zh.guide.department}：{content.department}
            </Text>
            {content.main_item ? (
              <Text className='row-sub'>
                {zh.guide.mainItem}：{content.main_item}
              </Text>
            ) : null}
            <Text className='row-sub care-hide'>
              {zh.guide.itemType}：{content.item_type}
            </Text>
            <View>
              {(item.data?.lists ?? []).map((list) => (
                <Text key={list} className='chip'>
                  {list}
                </Text>
              ))}
            </View>
            {content.auto_approval ? <Banner kind='info'>{zh.guide.auto}</Banner> : null}
          </View>
          {(item.data?.sub_items ?? []).length > 0 ? (
            <Section title={zh.guide.subItems}>
              {(item.data?.sub_items ?? []).map((sub) => (
                <Link
                  key={sub.implementing_code}
                  className='row'
                  onOpen={() =>
                    void Taro.navigateTo({
                      url: `/pages/guide/index?code=${encodeURIComponent(sub.implementing_code)}`
                    })
                  }
                >
                  <View className='row-main'>
                    <Text className='row-title'>{sub.name}</Text>
                  </View>
                </Link>
              ))}
            </Section>
          ) : null}
          <Section title={zh.guide.committedDays}>
            <Text>{content.committed_days !== null && content.committed_days !== undefined ? zh.common.days(content.committed_days) : '—'}</Text>
            <Text className='hint care-hide'>
              {zh.guide.legalDays}：
              {content.legal_days !== null && content.legal_days !== undefined ? zh.common.days(content.legal_days) : '—'}
            </Text>
            <Text className='hint'>
              {content.visits ? zh.guide.visits(content.visits) : zh.guide.noVisits}
            </Text>
          </Section>
          {content.conditions ? (
            <Section title={zh.guide.conditions}>
              <Text>{content.conditions}</Text>
            </Section>
          ) : null}
          <Section title={zh.guide.materials}>
            {(content.materials ?? []).map((m, i) => (
              <MaterialRow key={`${i}-${m.name}`} material={m} />
            ))}
          </Section>
          <Section title={zh.guide.fees}>
            {(content.fees ?? []).length === 0 ? <Text>{zh.guide.free}</Text> : null}
            {(content.fees ?? []).map((fee) => (
              <Text key={fee.name} className='row-title'>
                {fee.name}：¥{fee.amount_yuan}
              </Text>
            ))}
          </Section>
          {content.legal_basis ? (
            <View className='care-hide'>
              <Section title={zh.guide.legalBasis}>
                <Text className='hint'>{content.legal_basis}</Text>
              </Section>
            </View>
          ) : null}
          <Action kind='primary' onClick={() => void Taro.navigateTo({ url: `/pages/apply/index?code=${encodeURIComponent(code)}` })}>
            {zh.guide.apply}
          </Action>
        </>
      ) : null}
    </Screen>
  )
}
