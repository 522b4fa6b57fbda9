import Taro, { useRouter } from '@tarojs/taro'
import { Button, Input, Label, Picker, Switch, Text, View } from '@tarojs/components'
import { Tag } from '../../components/nut'
import { useEffect, useRef, useState } from 'react'
import { api, errorText, type Schemas } from '../../api/client'
import { Screen } from '../../components/Screen'
import { Empty, Failure, Loading } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { useCare } from '../../state/care'

type ItemSummary = Schemas['catalog.ItemSummary']

const DEBOUNCE_MS = 300

export default function SearchPage() {
  const router = useRouter()
  const { care } = useCare()
  const [query, setQuery] = useState(decodeURIComponent(router.params.q ?? ''))
  const [miaopi, setMiaopi] = useState(false)
  const [listIndex, setListIndex] = useState(0) // 0: any list
  // 部门, 主题, 事项类型: 0 is "any". No route lists the catalogue's departments, so the
  // department choices are the ones the results so far have shown.
  const [department, setDepartment] = useState('')
  const [departments, setDepartments] = useState<string[]>([])
  const [themeIndex, setThemeIndex] = useState(0)
  const [typeIndex, setTypeIndex] = useState(0)
  const [items, setItems] = useState<ItemSummary[]>([])
  const [total, setTotal] = useState(0)
  const [page, setPage] = useState(1)
  const [loading, setLoading] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const generation = useRef(0)

  const listOptions = [zh.search.anyList, ...zh.search.listNames]
  const departmentOptions = [zh.searchFilters.anyDepartment, ...departments]
  const themeOptions = [zh.searchFilters.anyTheme, ...zh.searchFilters.themes]
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
          theme: themeIndex > 0 ? zh.searchFilters.themes[themeIndex - 1] : undefined,
          type: typeIndex > 0 ? zh.searchFilters.types[typeIndex - 1] : undefined,
          page: pageNo
        }
      })
      if (mine !== generation.current) return // a newer search has started: drop this answer
      setItems(append ? (prev) => [...prev, ...answer.items] : answer.items)
      setTotal(answer.total)
      setDepartments((known) => {
        const more = answer.items.map((i) => i.department).filter((d) => !known.includes(d))
        return more.length > 0 ? [...known, ...new Set(more)].sort((a, b) => a.localeCompare(b, 'zh')) : known
      })
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
  }, [query, miaopi, listIndex, department, themeIndex, typeIndex])

  return (
    <Screen title={zh.titles.search}>
      <View className='section'>
        <View className='field'>
          <Label className='label' for='search-q'>
            {zh.search.label}
          </Label>
          <Input
            id='search-q'
            className='input'
            type='text'
            confirmType='search'
            focus
            maxlength={50}
            placeholder={zh.search.placeholder}
            value={query}
            onInput={(e) => setQuery(e.detail.value)}
          />
        </View>
        <View className={care ? 'care-hide' : ''}>
          <View className='row'>
            <Label className='label' for='search-miaopi'>
              {zh.search.miaopi}
            </Label>
            <Switch id='search-miaopi' checked={miaopi} ariaLabel={zh.search.miaopi} onChange={(e) => setMiaopi(e.detail.value)} />
          </View>
          <View className='row'>
            <Label className='label' for='search-list'>
              {zh.search.lists}
            </Label>
            <Picker
              id='search-list'
              mode='selector'
              range={listOptions}
              value={listIndex}
              onChange={(e) => setListIndex(Number(e.detail.value))}
            >
              <View className='input' ariaLabel={zh.search.lists}>
                {listOptions[listIndex]}
              </View>
            </Picker>
          </View>
          <View className='row'>
            <Label className='label' for='search-department'>
              {zh.searchFilters.department}
            </Label>
            <Picker
              id='search-department'
              mode='selector'
              range={departmentOptions}
              value={Math.max(0, departmentOptions.indexOf(department))}
              onChange={(e) => {
                const index = Number(e.detail.value)
                setDepartment(index > 0 ? departmentOptions[index] : '')
              }}
            >
              <View className='input' ariaLabel={zh.searchFilters.department} ariaRole='button'>
                {department || zh.searchFilters.anyDepartment}
              </View>
            </Picker>
          </View>
          <View className='row'>
            <Label className='label' for='search-theme'>
              {zh.searchFilters.theme}
            </Label>
            <Picker
              id='search-theme'
              mode='selector'
              range={themeOptions}
              value={themeIndex}
              onChange={(e) => setThemeIndex(Number(e.detail.value))}
            >
              <View className='input' ariaLabel={zh.searchFilters.theme} ariaRole='button'>
                {themeOptions[themeIndex]}
              </View>
            </Picker>
          </View>
          <View className='row'>
            <Label className='label' for='search-type'>
              {zh.searchFilters.type}
            </Label>
            <Picker
              id='search-type'
              mode='selector'
              range={typeOptions}
              value={typeIndex}
              onChange={(e) => setTypeIndex(Number(e.detail.value))}
            >
              <View className='input' ariaLabel={zh.searchFilters.type} ariaRole='button'>
                {typeOptions[typeIndex]}
              </View>
            </Picker>
          </View>
        </View>
      </View>
      {error ? <Failure message={error} onRetry={() => void load(1, false)} /> : null}
      <View className='section'>
        <Text className='hint'>{zh.search.results(total)}</Text>
        {items.length === 0 && !loading && !error ? <Empty text={zh.search.none} /> : null}
        {items.map((item) => (
          <View
            key={item.version_id}
            className='row'
            role='link'
            ariaRole='link'
            onClick={() =>
              void Taro.navigateTo({ url: `/pages/guide/index?code=${encodeURIComponent(item.implementing_code)}` })
            }
          >
            <View className='row-main'>
              <Text className='row-title'>{item.name}</Text>
              <Text className='row-sub care-hide'>
                {item.department}
                {item.committed_days !== null ? ` · ${zh.search.committed(item.committed_days)}` : ''}
              </Text>
            </View>
            {item.auto_approval ? <Tag type='success'>{zh.search.auto}</Tag> : null}
          </View>
        ))}
        {loading ? <Loading /> : null}
        {!loading && items.length < total ? (
          <Button className='btn btn-plain' onClick={() => void load(page + 1, true)}>
            {zh.search.more}
          </Button>
        ) : null}
      </View>
    </Screen>
  )
}
