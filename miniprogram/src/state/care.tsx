/**
 * 长辈版 (care mode): larger type and a simpler layout, switched on 我的 and remembered.
 * Pages read it through useCare(); the Screen wrapper adds the `care` class that scales type.
 */
import Taro from '@tarojs/taro'
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react'

const STORAGE_KEY = 'wangban.care'

interface Care {
  care: boolean
  setCare: (on: boolean) => void
}

const CareContext = createContext<Care>({ care: false, setCare: () => undefined })

export function CareProvider({ children }: { children: ReactNode }) {
  const [care, setState] = useState<boolean>(() => Taro.getStorageSync(STORAGE_KEY) === true)
  const setCare = useCallback((on: boolean) => {
    Taro.setStorageSync(STORAGE_KEY, on)
    setState(on)
  }, [])
  const value = useMemo(() => ({ care, setCare }), [care, setCare])
  return <CareContext.Provider value={value}>{children}</CareContext.Provider>
}

export function useCare(): Care {
  return useContext(CareContext)
}
