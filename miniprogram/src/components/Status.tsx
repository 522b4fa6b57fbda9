import { Text, View } from '@tarojs/components'
import type { ReactNode } from 'react'
import { zh } from '../i18n/zh'
import { Action } from './controls'

/** Loading, failure (with the gateway's own words and a retry) and empty states. */
export function Loading() {
  return (
    <View className='state' role='status' ariaRole='status'>
      <Text>{zh.common.loading}</Text>
    </View>
  )
}

export function Failure({ message, onRetry }: { message: string; onRetry?: () => void }) {
  return (
    <View className='state state-error' role='alert' ariaRole='alert'>
      <Text>{message}</Text>
      {onRetry ? (
        <Action onClick={onRetry}>{zh.common.retry}</Action>
      ) : null}
    </View>
  )
}

export function Empty({ text }: { text: string }) {
  return (
    <View className='state'>
      <Text>{text}</Text>
    </View>
  )
}

export function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <View className='section' ariaLabel={title}>
      <Heading>{title}</Heading>
      {children}
    </View>
  )
}

type BannerKind = 'dev' | 'warn' | 'info'

/** A notice that screen readers announce: alert for warnings, status otherwise. */
export function Banner({ kind, children }: { kind: BannerKind; children: ReactNode }) {
  const role = kind === 'warn' ? 'alert' : kind === 'dev' ? 'note' : 'status'
  return (
    <View className={`banner banner-${kind}`} role={role} ariaRole={role}>
      <Text>{children}</Text>
    </View>
  )
}

export function Heading({ children }: { children: ReactNode }) {
  return (
    // aria-level: a heading role needs its level (axe: aria-required-attr); sections are level 2.
    <View role='heading' ariaRole='heading' aria-level='2'>
      <Text className='section-title'>{children}</Text>
    </View>
  )
}
