import { zh } from '../i18n/zh'

/** Dates as the citizen reads them: 2026-12-07 14:05, in the phone's time zone. */
export function dateTime(value: string | null | undefined): string {
  if (!value) return '—'
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) return value
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

export function date(value: string | null | undefined): string {
  return value ? value.slice(0, 10) : '—'
}

/** How a material reaches the department, in the citizen's words. (Here, not in a page: a
 * mini-program page module exports only its page, so another page cannot import from it.) */
export function materialSource(source: string | undefined): string {
  const s = source ?? 'upload'
  if (s.startsWith('shared:')) return zh.guide.sources.shared
  if (s.startsWith('certificate:')) return zh.guide.sources.certificate
  if (s === 'commitment') return zh.guide.sources.commitment
  if (s === 'waived') return zh.guide.sources.waived
  return zh.guide.sources.upload
}
