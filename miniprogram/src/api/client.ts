/**
 * A typed wrapper over Taro.request keyed by the generated `paths` of the gateway's OpenAPI
 * document (src/api/schema.d.ts). A route, parameter or schema that changes in the gateway
 * changes these types, so code calling the old shape stops type-checking.
 *
 * openapi-fetch is not used: it is built on the Fetch API (Request/Response), which the
 * WeChat mini-program runtime does not have; Taro.request works on both targets.
 */
import Taro from '@tarojs/taro'
import type { components, paths } from './schema'
import { session } from './session'

export type Schemas = components['schemas']
export type Problem = Schemas['ProblemDetails']

type Method = 'get' | 'post' | 'put' | 'delete'

type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>

/** The paths that have an operation for method M. */
export type PathsFor<M extends Method> = {
  [P in keyof paths]: [Operation<P, M>] extends [never] ? never : P
}[keyof paths]

type Parameters_<O> = O extends { parameters: infer X } ? X : Record<string, never>

type JsonBody<O> = O extends { requestBody: { content: { 'application/json': infer B } } }
  ? { body: B }
  : O extends { requestBody?: { content: { 'application/json': infer B } } }
    ? { body?: B }
    : { body?: never }

type DropNever<T> = { [K in keyof T as [T[K]] extends [never | undefined] ? never : K]: T[K] }

/** What a call takes: the operation's path/query/header parameters and its JSON body. */
export type RequestInit<O> = DropNever<Omit<Parameters_<O>, 'cookie'>> & JsonBody<O>

type JsonOf<R> = R extends { content: { 'application/json': infer J } } ? J : undefined

/** The body of the operation's success answer (200, 201 or 204). */
export type Success<O> = O extends { responses: infer R }
  ? 200 extends keyof R
    ? JsonOf<R[200]>
    : 201 extends keyof R
      ? JsonOf<R[201]>
      : 204 extends keyof R
        ? undefined
        : unknown
  : never

type RequiredKeys<T> = { [K in keyof T]-?: Record<string, never> extends Pick<T, K> ? never : K }[keyof T]
type InitArgs<O> = [RequiredKeys<RequestInit<O>>] extends [never]
  ? [init?: RequestInit<O>]
  : [init: RequestInit<O>]

/** A problem+json answer (or a network failure, status 0) from the gateway. */
export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem | null

  constructor(status: number, problem: Problem | null, message: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.problem = problem
  }
}

interface RawInit {
  path?: Record<string, string | number>
  query?: Record<string, unknown>
  header?: Record<string, string>
  body?: unknown
}

function buildUrl(template: string, init: RawInit): string {
  const filled = template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = init.path?.[name]
    if (value === undefined) throw new Error(`missing path parameter ${name}`)
    return encodeURIComponent(String(value))
  })
  const query = Object.entries(init.query ?? {})
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&')
  return `${API_BASE}${filled}${query ? `?${query}` : ''}`
}

function asProblem(data: unknown): Problem | null {
  if (data && typeof data === 'object' && 'type' in data && 'title' in data) {
    return data as Problem
  }
  return null
}

interface Answer {
  statusCode: number
  data: unknown
}

async function send(method: Method, url: string, init: RawInit, token: string | null): Promise<Answer> {
  const header: Record<string, string> = { Accept: 'application/json', ...(init.header ?? {}) }
  if (init.body !== undefined) header['Content-Type'] = 'application/json'
  if (token) header.Authorization = `Bearer ${token}`
  try {
    const answer = await Taro.request({
      url,
      method: method.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'DELETE',
      header,
      data: init.body as Record<string, unknown> | undefined,
      dataType: 'json',
      responseType: 'text'
    })
    return { statusCode: answer.statusCode, data: answer.data }
  } catch (error) {
    const message = error instanceof Error ? error.message : String((error as { errMsg?: string })?.errMsg ?? error)
    throw new ApiError(0, null, message)
  }
}

/**
 * One call to the gateway. With a session, a 401 is answered once by rotating the refresh
 * token and retrying; if that fails too the session ends (and the app goes back to login,
 * see session.ts).
 */
async function call<M extends Method, P extends PathsFor<M>>(
  method: M,
  path: P,
  ...args: InitArgs<Operation<P, M>>
): Promise<Success<Operation<P, M>>> {
  const init = (args[0] ?? {}) as RawInit
  const url = buildUrl(path as string, init)
  const token = session.accessToken()
  let answer = await send(method, url, init, token)
  if (answer.statusCode === 401 && token) {
    const renewed = await session.refresh()
    if (renewed) {
      answer = await send(method, url, init, session.accessToken())
    }
    if (answer.statusCode === 401) {
      session.expired()
    }
  }
  if (answer.statusCode >= 200 && answer.statusCode < 300) {
    return (answer.statusCode === 204 ? undefined : answer.data) as Success<Operation<P, M>>
  }
  const problem = asProblem(answer.data)
  throw new ApiError(answer.statusCode, problem, problem?.detail ?? problem?.title ?? `HTTP ${answer.statusCode}`)
}

export const api = {
  get: <P extends PathsFor<'get'>>(path: P, ...args: InitArgs<Operation<P, 'get'>>) => call('get', path, ...args),
  post: <P extends PathsFor<'post'>>(path: P, ...args: InitArgs<Operation<P, 'post'>>) => call('post', path, ...args),
  put: <P extends PathsFor<'put'>>(path: P, ...args: InitArgs<Operation<P, 'put'>>) => call('put', path, ...args),
  delete: <P extends PathsFor<'delete'>>(path: P, ...args: InitArgs<Operation<P, 'delete'>>) =>
    call('delete', path, ...args)
}

/** The gateway's own words for a failure, for showing to the citizen. */
export function errorText(error: unknown, fallback: string): string {
  if (error instanceof ApiError) return error.problem?.detail || error.problem?.title || fallback
  return fallback
}
