/**
 * The citizen's session: the gateway's access token and its rotating refresh token, kept with
 * Taro.setStorageSync so a restart of the mini-program stays logged in.
 *
 * Each refresh token works once (the gateway rotates the pair and treats a second use as
 * theft, revoking the whole family), so concurrent 401s share one refresh in flight.
 */
import Taro from '@tarojs/taro'
import type { components, paths } from './schema'

type TokenOut = components['schemas']['TokenOut']
type RefreshIn = components['schemas']['RefreshIn']

const STORAGE_KEY = 'wangban.session'
const RETURN_KEY = 'wangban.returnTo'
export const LOGIN_PAGE = '/pages/login/index'
const REFRESH_PATH: keyof paths = '/api/v1/auth/refresh'

interface Stored {
  accessToken: string
  refreshToken: string
  /** epoch ms after which the access token is taken as expired */
  expiresAt: number
}

function read(): Stored | null {
  const value: unknown = Taro.getStorageSync(STORAGE_KEY)
  if (value && typeof value === 'object' && 'accessToken' in value && 'refreshToken' in value) {
    return value as Stored
  }
  return null
}

let inFlight: Promise<boolean> | null = null
let leaving = false

export const session = {
  accessToken(): string | null {
    return read()?.accessToken ?? null
  },

  refreshToken(): string | null {
    return read()?.refreshToken ?? null
  },

  loggedIn(): boolean {
    return read() !== null
  },

  store(tokens: TokenOut): void {
    const stored: Stored = {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresAt: Date.now() + tokens.expires_in * 1000
    }
    Taro.setStorageSync(STORAGE_KEY, stored)
    leaving = false
  },

  clear(): void {
    Taro.removeStorageSync(STORAGE_KEY)
  },

  /** Rotate the pair; false when there is no session or the gateway refused the token. */
  refresh(): Promise<boolean> {
    if (inFlight) return inFlight
    const current = read()
    if (!current) return Promise.resolve(false)
    const body: RefreshIn = { refresh_token: current.refreshToken }
    inFlight = Taro.request({
      url: `${API_BASE}${REFRESH_PATH}`,
      method: 'POST',
      header: { 'Content-Type': 'application/json', Accept: 'application/json' },
      data: body
    })
      .then((answer) => {
        if (answer.statusCode === 200) {
          session.store(answer.data as TokenOut)
          return true
        }
        return false
      })
      .catch(() => false)
      .finally(() => {
        inFlight = null
      })
    return inFlight
  },

  /**
   * The session is over (refresh refused): forget the tokens and go to the login page,
   * remembering where the citizen was. Drafts of forms live in their own storage keys
   * (state/drafts.ts) and are not touched, so a half-filled application survives.
   */
  expired(): void {
    session.clear()
    if (leaving) return
    leaving = true
    // The current page and its parameters, the same way on both targets.
    const router = Taro.getCurrentInstance().router
    const path = router?.path ? `/${router.path.replace(/^\/+/, '').split('?')[0]}` : null
    if (path && path !== LOGIN_PAGE) {
      const query = Object.entries(router?.params ?? {})
        .filter(([k, v]) => k !== '$taroTimestamp' && k !== 'stamp' && v !== undefined)
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
        .join('&')
      Taro.setStorageSync(RETURN_KEY, query ? `${path}?${query}` : path)
    }
    void Taro.reLaunch({ url: LOGIN_PAGE })
  },

  /** Whether the last session ended under the citizen (not a first visit or a logout). */
  endedUnderway(): boolean {
    return Boolean(Taro.getStorageSync(RETURN_KEY))
  },

  /** Where to go after logging in (the page the session ended on), once. */
  takeReturnTo(): string | null {
    const value: unknown = Taro.getStorageSync(RETURN_KEY)
    Taro.removeStorageSync(RETURN_KEY)
    return typeof value === 'string' && value ? value : null
  }
}
