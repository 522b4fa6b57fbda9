import Taro, { useDidShow } from '@tarojs/taro'
import { Label, Radio, RadioGroup, Text, View } from '@tarojs/components'
import { useState } from 'react'
import { api, errorText } from '../../api/client'
import { LOGIN_PAGE, session } from '../../api/session'
import { Action, TextField } from '../../components/controls'
import { Screen } from '../../components/Screen'
import { Banner, Empty, Failure, Loading, Section } from '../../components/Status'
import { zh } from '../../i18n/zh'
import { actingFor, setActingFor } from '../../lib/acting'
import { dateTime } from '../../lib/format'
import { useLoad } from '../../lib/useLoad'
import { usccProblem } from '../../lib/validate'

const PERSON = 'person'

/** 我代办的企业: the companies bound, binding one, and whom applications are filed for. */
export default function CompaniesPage() {
  const companies = useLoad(async () => {
    if (!session.loggedIn()) {
      void Taro.reLaunch({ url: LOGIN_PAGE })
      return []
    }
    const list = await api.get('/api/v1/me/companies')
    // A company no longer bound cannot be acted for: back to the person.
    const current = actingFor()
    if (current && !list.some((c) => c.uscc === current.uscc)) setActingFor(null)
    setActing(actingFor()?.uscc ?? PERSON)
    return list
  })
  const [acting, setActing] = useState<string>(() => actingFor()?.uscc ?? PERSON)
  const [uscc, setUscc] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useDidShow(() => setActing(actingFor()?.uscc ?? PERSON))

  const list = companies.data ?? []

  const bind = async () => {
    if (busy) return
    const problem = usccProblem(uscc)
    if (problem) {
      setError(problem)
      return
    }
    setBusy(true)
    setError(null)
    try {
      const bound = await api.post('/api/v1/me/companies', { body: { uscc: uscc.trim().toUpperCase() } })
      setUscc('')
      companies.setData([...list.filter((c) => c.uscc !== bound.uscc), bound])
      void Taro.showToast({ title: zh.companies.bound, icon: 'success' })
    } catch (e) {
      setError(errorText(e, zh.common.failed))
    } finally {
      setBusy(false)
    }
  }

  const choose = (value: string) => {
    const company = list.find((c) => c.uscc === value) ?? null
    setActingFor(company)
    setActing(company ? company.uscc : PERSON)
    void Taro.showToast({ title: zh.companies.switched, icon: 'none' })
  }

  return (
    <Screen title={zh.titles.companies}>
      <Section title={zh.companies.listHeading}>
        {companies.loading ? <Loading /> : null}
        {companies.error ? <Failure message={companies.error} onRetry={companies.reload} /> : null}
        {!companies.loading && !companies.error && list.length === 0 ? <Empty text={zh.companies.empty} /> : null}
        {list.map((c) => (
          <View key={c.uscc} className='row'>
            <View className='row-main'>
              <Text className='row-title'>{c.company_name}</Text>
              <Text className='row-sub'>
                {zh.companies.usccLabel}：{c.uscc}
              </Text>
              <Text className='row-sub care-hide'>
                {zh.companies.verifiedAt}：{dateTime(c.verified_at)}
              </Text>
            </View>
            <Text className='chip'>{zh.companies.roles[c.role] ?? c.role}</Text>
          </View>
        ))}
      </Section>
      {list.length > 0 ? (
        <Section title={zh.companies.identityHeading}>
          <Text className='hint care-hide'>{zh.companies.identityHint}</Text>
          <RadioGroup onChange={(e) => choose(String(e.detail.value))}>
            <Label className='row' for='acting-person'>
              <Radio id='acting-person' value={PERSON} checked={acting === PERSON} ariaLabel={zh.companies.asPerson} />
              <Text>{zh.companies.asPerson}</Text>
            </Label>
            {list.map((c) => (
              <Label key={c.uscc} className='row' for={`acting-${c.uscc}`}>
                <Radio
                  id={`acting-${c.uscc}`}
                  value={c.uscc}
                  checked={acting === c.uscc}
                  ariaLabel={zh.companies.asCompany(c.company_name)}
                />
                <Text>{zh.companies.asCompany(c.company_name)}</Text>
              </Label>
            ))}
          </RadioGroup>
        </Section>
      ) : null}
      <Section title={zh.companies.bindHeading}>
        <Text className='hint care-hide'>{zh.companies.bindHint}</Text>
        <TextField
          id='company-uscc'
          label={zh.companies.usccLabel}
          maxlength={18}
          placeholder={zh.companies.usccPlaceholder}
          value={uscc}
          onChange={setUscc}
        />
        {error ? <Banner kind='warn'>{error}</Banner> : null}
        <Action kind='primary' disabled={busy} onClick={() => void bind()}>
          {busy ? zh.companies.binding : zh.companies.bind}
        </Action>
      </Section>
    </Screen>
  )
}
