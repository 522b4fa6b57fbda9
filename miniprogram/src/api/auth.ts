/** Logging in and out: wx.login in the mini-program, the development login in local H5. */
import Taro from '@tarojs/taro'
import { api, type Schemas } from './client'
import { session } from './session'
import { clearAllDrafts } from '../state/drafts'
import { setActingFor } from '../lib/acting'

export type DevLogin = Schemas['DevLoginIn']

/** The mini-program's login: wx.login's one-time code, exchanged at the gateway. */
export async function loginWithWeChat(): Promise<void> {
  const { code } = await Taro.login()
  const tokens = await api.post('/api/v1/auth/wechat', { body: { code } })
  session.store(tokens)
}

/** Local development only: the gateway answers this in WANGBAN_ENV local or test alone. */
export async function loginForDevelopment(persona: DevLogin): Promise<void> {
  const tokens = await api.post('/api/v1/auth/dev', { body: persona })
  session.store(tokens)
}

export async function logout(): Promise<void> {
  const refresh = session.refreshToken()
  try {
    if (refresh) await api.post('/api/v1/auth/logout', { body: { refresh_token: refresh } })
  } finally {
    session.clear()
    // A lost session keeps the drafts (the citizen comes back to them); a logout does not.
    clearAllDrafts()
    // The next person on this phone files for themselves.
    setActingFor(null)
  }
}
