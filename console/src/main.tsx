import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { BrowserRouter } from 'react-router-dom'
import { ConfigProvider } from 'tdesign-react'
import 'tdesign-react/es/style/index.css'
import './styles.css'
import { App } from './App'
import { AuthProvider } from './auth/AuthContext'
import { zh } from './i18n/zh'

document.documentElement.lang = 'zh-CN'
document.title = zh.app.name

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    {/* No ripple: its overlay leaves a clicked button's text briefly without contrast. */}
    <ConfigProvider globalConfig={{ animation: { include: ['expand', 'fade'], exclude: ['ripple'] } }}>
      <BrowserRouter basename="/console">
        <AuthProvider sessionLostNotice={zh.login.sessionExpired}>
          <App />
        </AuthProvider>
      </BrowserRouter>
    </ConfigProvider>
  </StrictMode>
)
