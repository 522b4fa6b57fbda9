import Taro, { useRouter } from '@tarojs/taro'
import { Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { useEffect, useRef, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { Action, Link, PickerField, SwitchField, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useLoad } from '../../lib/useLoad'
import { useCare } from '../../state/care'

type ItemSummary = Schemas['catalog.ItemSummary']
type ZeroResultHelp = Schemas['catalog.ZeroResultHelpOut']

const DEBOUNCE_MS = 300

export default function SearchPage() {
  const router = useRouter()
  const { care } = useCare()
  const [query, setQuery] = useState(decodeURIComponent(router.params.q ?? ''))
  const [miaopi, setMiaopi] = useState(false)
  const [listIndex, setListIndex] = useState(0) // 0: any list
  // 部门 and 主题: the catalogue's own (those of published items, GET /facets); '' is "any".
  const facets = useLoad(() => api.get('/api/v1/facets'))
  const [department, setDepartment] = useState('')
  const [theme, setTheme] = useState('')
  const [typeIndex, setTypeIndex] = useState(0)
  const [items, setItems] = useState<ItemSummary[]>([])
  const [total, setTotal] = useState(0)
  // When nothing matched: the nearest items and whom to call (the catalogue's answer).
  const [help, setHelp] = useState<ZeroResultHelp | null>(null)
  const [page, setPage] = useState(1)
  const [loading, setLoading] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const generation = useRef(0)

  const listOptions = [zh.search.anyList, ...zh.search.listNames]
  const departments = (facets.data?.departments ?? []).map((d) => d.name)
  const themes = (facets.data?.themes ?? []).map((t) => t.name)
  const departmentOptions = [zh.searchFilters.anyDepartment, ...departments]
  const themeOptions = [zh.searchFilters.anyTheme, ...themes]
  const typeOptions = [zh.searchFilters.anyType, ...zh.searchFilters.types]

  const load = async (pageNo: number, append: boolean) => {
    const mine = ++generation.current
    setLoading(true)
    setError(null)
    try {
      const answer = await api.get('/api/v1/items', {
        query: {
          q: query.trim() || undefined,
          miaopi: miaopi || undefined,
          list: listIndex > 0 ? zh.search.listNames[listIndex - 1] : undefined,
          department: department || undefined,
          theme: theme || undefined,
          type: typeIndex > 0 ? zh.searchFilters.types[typeIndex - 1] : undefined,
          page: pageNo
        }
      })
      if (mine !== generation.current) return // a newer search has started: drop this answer
      setItems(append ? (prev) => [...prev, ...answer.items] : answer.items)
      setTotal(answer.total)
      setHelp(answer.help ?? null)
      setPage(answer.page)
    } catch (e) {
      if (mine === generation.current) setError(errorText(e, zh.common.failed))
    } finally {
      if (mine === generation.current) setLoading(false)
    }
  }

  // As-you-type: search again a moment after the last keystroke or filter change.
  useEffect(() => {
    const timer = setTimeout(() => void load(1, false), DEBOUNCE_MS)
    return () => clearTimeout(timer)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query, miaopi, listIndex, department, theme, typeIndex])

  return (
    <Screen title={zh.titles.search}>
      <View className='section'>
        <TextField
          id='search-q'
          label={zh.search.label}
          kind='search'
          focus
          maxlength={50}
          placeholder={zh.search.placeholder}
          value={query}
          onChange={setQuery}
        />
        <View className={care ? 'care-hide' : ''}>
          <SwitchField id='search-miaopi' label={zh.search.miaopi} checked={miaopi} onChange={setMiaopi} />
          <PickerField
            row
            id='search-list'
            label={zh.search.lists}
            options={listOptions}
            index={listIndex}
            shown={listOptions[listIndex]}
            onPick={setListIndex}
          />
          <PickerField
            row
            id='search-department'
            label={zh.searchFilters.department}
            options={departmentOptions}
            index={Math.max(0, departmentOptions.indexOf(department))}
            shown={department || zh.searchFilters.anyDepartment}
            onPick={(index) => setDepartment(index > 0 ? departmentOptions[index] : '')}
          />
          <PickerField
            row
            id='search-theme'
            label={zh.searchFilters.theme}
            options={themeOptions}
            index={Math.max(0, themeOptions.indexOf(theme))}
            shown={theme || zh.searchFilters.anyTheme}
            onPick={(index) => setTheme(index > 0 ? themeOptions[index] : '')}
          />
          <PickerField
            row
            id='search-type'
            label={zh.searchFilters.type}
            options={typeOptions}
            index={typeIndex}
            shown={typeOptions[typeIndex]}
            onPick={setTypeIndex}
          />
        </View>
      </View>
      {error ? <Failure message={error} onRetry={() => void load(1, false)} /> : null}
      <View className='section'>
        <Text className='hint'>{zh.search.results(total)}</Text>
        {items.length === 0 && !loading && !error ? <Empty text={zh.search.none} /> : null}
        {items.map((item) => (
          <ItemRow key={item.version_id} item={item} />
        ))}
        {items.length === 0 && !loading && !error && help ? <NothingFound help={help} /> : null}
        {loading ? <Loading /> : null}
        {!loading && items.length < total ? (
          <Action onClick={() => void load(page + 1, true)}>
            {zh.search.more}
          </Action>
        ) : null}
      </View>
    </Screen>
  )
}

function ItemRow({ item }: { item: ItemSummary }) {
  return (
    <Link
      className='row'
      onOpen={() => void Taro.navigateTo({ url: `/pages/guide/index?code=${encodeURIComponent(item.implementing_code)}` })}
    >
      <View className='row-main'>
        <Text className='row-title'>{item.name}</Text>
        {/* 'hint', not 'row-sub': the 子项's 主项, not the department line the filters act on */}
        {item.main_item ? <Text className='hint'>{zh.search.mainItem(item.main_item)}</Text> : null}
        <Text className='row-sub care-hide'>
          {item.department}
          {item.committed_days !== null ? ` · ${zh.search.committed(item.committed_days)}` : ''}
        </Text>
      </View>
      {item.auto_approval ? <Tag type='success'>{zh.search.auto}</Tag> : null}
    </Link>
  )
}

// Nothing matched: the items nearest to what was typed, then the hotline (12345 by default).
function NothingFound({ help }: { help: ZeroResultHelp }) {
  return (
    <View>
      {help.suggestions.length > 0 ? (
        <View ariaLabel={zh.search.suggestions}>
          <Text className='hint'>{zh.search.suggestions}</Text>
          {help.suggestions.map((item) => (
            <ItemRow key={item.version_id} item={item} />
          ))}
        </View>
      ) : null}
      {help.hotlines.length > 0 ? (
        <View ariaLabel={zh.search.stillLost}>
          <Text className='hint'>{zh.search.stillLost}</Text>
          {help.hotlines.map((line) => (
            <View key={line.phone} className='row'>
              <View className='row-main'>
                <Text className='row-title'>{line.name}</Text>
                <Text className='row-sub'>{line.phone}</Text>
              </View>
              {/* Where the host cannot dial (a desktop browser), the number above is still shown. */}
              <Action mini onClick={() => void Taro.makePhoneCall({ phoneNumber: line.phone }).catch(() => undefined)}>
                {zh.search.call(line.phone)}
              </Action>
            </View>
          ))}
        </View>
      ) : null}
    </View>
  )
}
