import type { PropsWithChildren } from 'react'
import { CareProvider } from './state/care'
import '@nutui/nutui-react-taro/dist/es/packages/button/style/css'
import '@nutui/nutui-react-taro/dist/es/packages/cell/style/css'
import '@nutui/nutui-react-taro/dist/es/packages/tag/style/css'
import '@nutui/nutui-react-taro/dist/es/packages/switch/style/css'
import './app.css'

function App({ children }: PropsWithChildren) {
  return <CareProvider>{children}</CareProvider>
}

export default App
