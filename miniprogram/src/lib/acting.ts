/**
 * 以企业名义办理: whom new applications are filed for, the citizen or one of the companies
 * they have bound. Kept in storage; the apply page sends it as ApplyIn.act_for_company (the
 * gateway checks the binding and answers 403 company-not-bound otherwise).
 */
import Taro from '@tarojs/taro'

const STORAGE_KEY = 'wangban.actingFor'

export interface ActingFor {
  uscc: string
  company_name: string
}

export function actingFor(): ActingFor | null {
  const value: unknown = Taro.getStorageSync(STORAGE_KEY)
  if (value && typeof value === 'object' && 'uscc' in value && 'company_name' in value) {
    return value as ActingFor
  }
  return null
}

export function setActingFor(company: ActingFor | null): void {
  if (company) Taro.setStorageSync(STORAGE_KEY, { uscc: company.uscc, company_name: company.company_name })
  else Taro.removeStorageSync(STORAGE_KEY)
}
