/** Checks of what the citizen types, in their words (the gateway has the last word). */
import { zh } from '../i18n/zh'

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
const ID_CHECK = '10X98765432'

/** A resident ID number (GB 11643): 17 digits and a check character. */
export function idNumberProblem(value: string): string | null {
  const v = value.trim().toUpperCase()
  if (!v) return zh.realName.idMissing
  if (!/^\d{17}[\dX]$/.test(v)) return zh.realName.idFormat
  const sum = ID_WEIGHTS.reduce((acc, w, i) => acc + w * Number(v[i]), 0)
  return ID_CHECK[sum % 11] === v[17] ? null : zh.realName.idChecksum
}

export function nameProblem(value: string): string | null {
  const v = value.trim()
  if (!v) return zh.realName.nameMissing
  if (v.length > 50) return zh.realName.nameTooLong
  return null
}

/** A unified social credit code (GB 32100): 18 characters, digits and capitals but I, O, Z, S, V. */
export function usccProblem(value: string): string | null {
  const v = value.trim().toUpperCase()
  if (!v) return zh.companies.usccMissing
  if (!/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(v)) return zh.companies.usccFormat
  return null
}

export function mobileProblem(value: string): string | null {
  const v = value.trim()
  if (!v) return zh.phone.mobileMissing
  return /^1\d{10}$/.test(v) ? null : zh.phone.mobileFormat
}
