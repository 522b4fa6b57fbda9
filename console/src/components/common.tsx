import { useEffect } from 'react'
import type { ReactNode } from 'react'
import { Alert, Empty, Tag } from 'tdesign-react'
import { zh } from '../i18n/zh'

/** The page <title> for a route. */
export function usePageTitle(page: string): void {
  useEffect(() => {
    document.title = zh.app.title(page)
  }, [page])
}

/** A page's heading (its section is labelled by `id`), with the page's own buttons beside it. */
export function PageHead({ id, title, children }: { id: string; title: string; children?: ReactNode }) {
  return (
    <div className="page-head">
      <h1 id={id} className="page-title">
        {title}
      </h1>
      {children}
    </div>
  )
}

/** A refusal or failure as the gateway explained it (problem+json detail). */
export function ProblemAlert({ problem }: { problem?: string | null }) {
  if (!problem) return null
  return (
    <div role="alert" className="problem">
      <Alert theme="error" message={problem} />
    </div>
  )
}

export function Forbidden() {
  usePageTitle(zh.app.forbidden)
  return (
    <section aria-labelledby="forbidden-title">
      <h1 id="forbidden-title" className="page-title">
        {zh.app.forbidden}
      </h1>
      <Empty type="fail" title={zh.app.forbidden} description={zh.app.forbiddenDetail} />
    </section>
  )
}

export function NotFound() {
  usePageTitle(zh.app.notFound)
  return (
    <section aria-labelledby="not-found-title">
      <h1 id="not-found-title" className="page-title">
        {zh.app.notFound}
      </h1>
      <Empty type="empty" title={zh.app.notFound} />
    </section>
  )
}

/** A workspace not built yet: says so, shows no data. */
export function ComingSoon({ title }: { title: string }) {
  usePageTitle(title)
  return (
    <section aria-labelledby="coming-soon-title">
      <h1 id="coming-soon-title" className="page-title">
        {title}
      </h1>
      <Empty type="maintenance" title={zh.app.comingSoon} description={zh.app.comingSoonDetail} />
    </section>
  )
}

const dateTime = new Intl.DateTimeFormat('zh-CN', {
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hour12: false,
})

export function formatDateTime(value?: string | null): string {
  if (!value) return '—'
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? value : dateTime.format(date)
}

export function formatDate(value?: string | null): string {
  return value || '—'
}

const LIGHT_THEMES = { green: 'success', yellow: 'warning', red: 'danger' } as const

/** A case's 红黄绿灯, in words as well as colour (the colour alone tells a screen reader nothing). */
export function DeadlineLight({
  light,
  daysLeft,
}: {
  light?: 'green' | 'yellow' | 'red' | null
  daysLeft?: number | null
}) {
  if (!light) return null
  return (
    <Tag theme={LIGHT_THEMES[light]} variant="light-outline" className="deadline-light">
      {zh.deadlineLights[light]}
      {daysLeft === null || daysLeft === undefined ? null : ` · ${zh.deadlineLights.days(daysLeft)}`}
    </Tag>
  )
}
