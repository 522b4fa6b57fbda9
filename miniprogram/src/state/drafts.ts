/**
 * Drafts of forms being filled, in storage under their own keys: they outlive a lost session
 * (session.expired() leaves them) and a restart, and are removed once the form is filed.
 */
import Taro from '@tarojs/taro'

const PREFIX = 'wangban.draft.'

export function loadDraft<T>(key: string): T | null {
  const value: unknown = Taro.getStorageSync(PREFIX + key)
  return value ? (value as T) : null
}

export function saveDraft<T>(key: string, value: T): void {
  Taro.setStorageSync(PREFIX + key, value)
}

export function clearDraft(key: string): void {
  Taro.removeStorageSync(PREFIX + key)
}

/** A fresh Idempotency-Key: random enough that two drafts never share one. */
export function newIdempotencyKey(): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('')
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${(8 + Math.floor(Math.random() * 4)).toString(16)}${hex(3)}-${hex(12)}`
}

/** Forget every draft: on logout, since drafts may hold personal data (x-personal fields). */
export function clearAllDrafts(): void {
  for (const key of Taro.getStorageInfoSync().keys) {
    if (key.startsWith(PREFIX)) Taro.removeStorageSync(key)
  }
}
