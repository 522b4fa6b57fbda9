import { useCallback, useEffect, useState } from 'react'
import { errorText } from '../api/client'
import { zh } from '../i18n/zh'

/** A value loaded from the gateway, with its loading and failure states and a reload. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState(true)
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps)
  const reload = useCallback(() => {
    setLoading(true)
    setError(null)
    run()
      .then((value) => setData(value))
      .catch((e: unknown) => setError(errorText(e, zh.common.failed)))
      .finally(() => setLoading(false))
  }, [run])
  useEffect(() => {
    reload()
  }, [reload])
  return { data, error, loading, reload, setData }
}
