// Reading what a page shows: the answer, whether a read is under way, and the gateway's refusal.
// Every page that lists something read it the same way; this is that one way.
import { useCallback, useEffect, useRef, useState } from 'react'
import type { DependencyList, Dispatch, SetStateAction } from 'react'

/** What `attempt()` gives back: the data, or the refusal in words. */
export type Answer<T> = { data?: T; problem?: string }

export type Read<T> = {
  /** The last answer read (kept when a later read is refused, so the page does not go blank). */
  data: T | undefined
  /** Changes the answer in place (e.g. a row as an action's answer left it). */
  setData: Dispatch<SetStateAction<T | undefined>>
  loading: boolean
  problem: string | null
  setProblem: Dispatch<SetStateAction<string | null>>
  /** Reads again with the page's current filters (a 刷新 button, after an action). */
  reload: () => Promise<void>
}

/**
 * Reads with `read` when the page opens and whenever `deps` change. A read that answers after a
 * later one has started is dropped: the slower, older answer would otherwise overwrite the one
 * for the filters now shown.
 */
export function useAnswer<T>(read: () => Promise<Answer<T>>, deps: DependencyList): Read<T> {
  const [data, setData] = useState<T | undefined>(undefined)
  const [loading, setLoading] = useState(true)
  const [problem, setProblem] = useState<string | null>(null)
  const reads = useRef(0)
  // The newest `read` closes over the page's current state; a reload always uses it.
  const latest = useRef(read)
  latest.current = read

  const reload = useCallback(async () => {
    const mine = ++reads.current
    setLoading(true)
    const answer = await latest.current()
    if (mine !== reads.current) return
    setLoading(false)
    if (answer.data !== undefined) setData(() => answer.data)
    setProblem(answer.problem ?? null)
  }, [])

  useEffect(() => {
    void reload()
    // The caller names what its read depends on, as for useEffect.
  }, deps)

  // An answer arriving after the page has gone is not wanted either.
  useEffect(
    () => () => {
      reads.current++
    },
    []
  )

  return { data, setData, loading, problem, setProblem, reload }
}
