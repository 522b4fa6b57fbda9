// The typed gateway client: openapi-fetch keyed by the generated `paths`. Every call is relative
// (/api/v1/...): the gateway serves the console on its own origin.
import createClient from 'openapi-fetch'
import type { components, paths } from './schema'
import { zh } from '../i18n/zh'
import { clearSession, readTokens, writeTokens } from '../auth/tokens'

export type Schemas = components['schemas']
export type Problem = Schemas['ProblemDetails']

/** Unauthenticated calls (login, refresh, logout): no bearer token, no retry. */
export const publicApi = createClient<paths>({ baseUrl: '' })

let refreshing: Promise<boolean> | null = null

/** One refresh in flight at a time: a refresh token works once, so concurrent 401s share it. */
function refreshOnce(): Promise<boolean> {
  if (!refreshing) {
    refreshing = (async () => {
      const tokens = readTokens()
      if (!tokens) return false
      try {
        const { data } = await publicApi.POST('/api/v1/auth/refresh', {
          body: { refresh_token: tokens.refresh },
        })
        if (!data) return false
        writeTokens({ access: data.access_token, refresh: data.refresh_token })
        return true
      } catch {
        return false
      }
    })().finally(() => {
      refreshing = null
    })
  }
  return refreshing
}

type SessionListener = () => void
const sessionLostListeners = new Set<SessionListener>()

/** Called when a 401 cannot be fixed by a refresh: the console goes back to the login page. */
export function onSessionLost(listener: SessionListener): () => void {
  sessionLostListeners.add(listener)
  return () => sessionLostListeners.delete(listener)
}

function withBearer(request: Request): Request {
  const tokens = readTokens()
  if (tokens) request.headers.set('Authorization', `Bearer ${tokens.access}`)
  return request
}

async function authFetch(request: Request): Promise<Response> {
  const retry = request.clone()
  const response = await fetch(withBearer(request))
  if (response.status !== 401 || !readTokens()) return response
  if (await refreshOnce()) {
    const again = await fetch(withBearer(retry))
    if (again.status !== 401) return again
  }
  clearSession()
  sessionLostListeners.forEach((listener) => listener())
  return response
}

/** Authenticated calls: bearer token, one refresh-and-retry on 401. */
export const api = createClient<paths>({ baseUrl: '', fetch: authFetch })

/** The gateway's Chinese explanation of a refusal (problem+json `detail`, else its `title`). */
export function problemText(error: unknown): string {
  if (error && typeof error === 'object') {
    const problem = error as Partial<Problem>
    const parts: string[] = []
    if (typeof problem.detail === 'string' && problem.detail) parts.push(problem.detail)
    else if (typeof problem.title === 'string' && problem.title) parts.push(problem.title)
    if (Array.isArray(problem.errors)) {
      for (const fieldError of problem.errors) {
        if (fieldError && typeof fieldError.detail === 'string') parts.push(fieldError.detail)
      }
    }
    if (parts.length) return parts.join(zh.errors.separator)
  }
  return zh.errors.unknown
}

/** Runs a call and turns a thrown network failure into the same shape as a refusal. */
export async function attempt<T>(
  call: () => Promise<{ data?: T; error?: unknown; response: Response }>
): Promise<{ data?: T; problem?: string; status?: number }> {
  try {
    const { data, error, response } = await call()
    if (error !== undefined || data === undefined) {
      if (response.ok && data === undefined && error === undefined) return { status: response.status }
      return { problem: problemText(error), status: response.status }
    }
    return { data, status: response.status }
  } catch {
    return { problem: zh.errors.network }
  }
}
