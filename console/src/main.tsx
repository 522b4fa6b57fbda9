import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { BrowserRouter } from 'react-router-dom'
import { ConfigProvider } from 'tdesign-react'
import 'tdesign-react/es/style/index.css'
// The styles of the components only the lazily loaded workspaces use (App.tsx), loaded here so
// that they come before styles.css, whose rules must still win over them (.t-table__empty …).
import 'tdesign-react/es/input/style/css.js'
import 'tdesign-react/es/space/style/css.js'
import 'tdesign-react/es/table/style/css.js'
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
