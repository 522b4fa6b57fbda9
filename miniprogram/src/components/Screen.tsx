import Taro from '@tarojs/taro'
import { View } from '@tarojs/components'
import { useEffect, type ReactNode } from 'react'
import { useCare } from '../state/care'

/** Every page's frame: its title (from the zh module), and the 长辈版 class when on. */
export function Screen({ title, children }: { title: string; children: ReactNode }) {
  const { care } = useCare()
  useEffect(() => {
    void Taro.setNavigationBarTitle({ title })
  }, [title])
  return (
    <View className={care ? 'page care' : 'page'} ariaLabel={title}>
      {children}
    </View>
  )
}
