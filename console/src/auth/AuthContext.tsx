// Who is logged in: the token pair (sessionStorage), the login name, and /api/v1/me (roles,
// department, region, and the operations the member's roles allow). `can()` is the one check
// every menu entry, route and button goes through.
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import type { ReactNode } from 'react'
import { api, attempt, onSessionLost, publicApi, type Schemas } from '../api/client'
import { clearSession, readTokens, readUsername, writeTokens, writeUsername } from './tokens'
import type { Operation } from './operations'

type Me = Schemas['MeOut']

type AuthState =
  | { status: 'loading' }
  | { status: 'anonymous'; notice?: string }
  | { status: 'ready'; me: Me; username: string }

type Auth = {
  state: AuthState
  can: (operation: Operation) => boolean
  login: (username: string, password: string) => Promise<string | null>
  logout: () => Promise<void>
}

const AuthContext = createContext<Auth | null>(null)

async function loadMe(): Promise<{ me?: Me; problem?: string }> {
  const { data, problem } = await attempt(() => api.GET('/api/v1/me'))
  return data ? { me: data } : { problem }
}

export function AuthProvider({ children, sessionLostNotice }: { children: ReactNode; sessionLostNotice: string }) {
  const [state, setState] = useState<AuthState>(() =>
    readTokens() ? { status: 'loading' } : { status: 'anonymous' }
  )

  useEffect(() => {
    if (state.status !== 'loading') return
    let cancelled = false
    void loadMe().then(({ me }) => {
      if (cancelled) return
      if (me) setState({ status: 'ready', me, username: readUsername() ?? me.subject })
      else {
        clearSession()
        setState({ status: 'anonymous' })
      }
    })
    return () => {
      cancelled = true
    }
  }, [state.status])

  useEffect(
    () => onSessionLost(() => setState({ status: 'anonymous', notice: sessionLostNotice })),
    [sessionLostNotice]
  )

  const operations = useMemo(
    () => new Set<string>(state.status === 'ready' ? state.me.operations ?? [] : []),
    [state]
  )
  const can = useCallback((operation: Operation) => operations.has(operation), [operations])

  const login = useCallback(async (username: string, password: string) => {
    const { data, problem } = await attempt(() =>
      publicApi.POST('/api/v1/auth/staff', { body: { username, password } })
    )
    if (!data) return problem ?? null
    writeTokens({ access: data.access_token, refresh: data.refresh_token })
    writeUsername(username)
    const { me, problem: meProblem } = await loadMe()
    if (!me) {
      clearSession()
      return meProblem ?? null
    }
    setState({ status: 'ready', me, username })
    return null
  }, [])

  const logout = useCallback(async () => {
    const tokens = readTokens()
    if (tokens) {
      await attempt(() =>
        publicApi.POST('/api/v1/auth/logout', {
          body: { refresh_token: tokens.refresh },
          headers: { Authorization: `Bearer ${tokens.access}` },
        })
      )
    }
    clearSession()
    setState({ status: 'anonymous' })
  }, [])

  const value = useMemo(() => ({ state, can, login, logout }), [state, can, login, logout])
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext)
  if (!auth) throw new Error('useAuth outside AuthProvider')
  return auth
}

/** Shows its children only when the member may call the operation. */
export function Can({ operation, children }: { operation: Operation; children: ReactNode }) {
  const { can } = useAuth()
  return can(operation) ? <>{children}</> : null
}
