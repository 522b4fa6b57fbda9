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
