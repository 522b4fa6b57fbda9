// The routes. A workspace's route is registered only when the member may call the operations it
// needs; any other path under a known workspace shows 无权访问.
import { Navigate, Route, Routes, useLocation } from 'react-router-dom'
import { Loading } from 'tdesign-react'
import { useAuth } from './auth/AuthContext'
import { Forbidden, NotFound } from './components/common'
import { zh } from './i18n/zh'
import { Shell } from './layout/Shell'
import { AuditWorkspace } from './pages/audit'
import { CatalogWorkspace } from './pages/catalog'
import { LoginPage } from './pages/Login'
import { OpsWorkspace } from './pages/ops'
import { RectificationWorkspace } from './pages/rectification'
import { StatsWorkspace } from './pages/stats'
import { CaseDetailPage } from './pages/review/CaseDetail'
import { QueuePage } from './pages/review/Queue'
import { NewApplicationPage } from './pages/window/NewApplication'
import { ReceiptPage } from './pages/window/Receipt'
import { WindowListPage } from './pages/window/WindowList'
import { WORKSPACES } from './workspaces'


function Home() {
  const { can } = useAuth()
  const first = WORKSPACES.find((workspace) => workspace.operations.some(can))
  if (first) return <Navigate to={first.path} replace />
  return <p>{zh.app.noWorkspace}</p>
}

function Fallback() {
  const { pathname } = useLocation()
  const known = WORKSPACES.some((w) => pathname === w.path || pathname.startsWith(`${w.path}/`))
  return known ? <Forbidden /> : <NotFound />
}

export function App() {
  const { state, can } = useAuth()
  const location = useLocation()

  if (state.status === 'loading') {
    return (
      <main className="center">
        <Loading text={zh.app.loading} />
      </main>
    )
  }
  if (state.status === 'anonymous') {
    return (
      <Routes>
        <Route path="/login" element={<LoginPage notice={state.notice} />} />
        <Route path="*" element={<Navigate to="/login" replace state={{ from: location.pathname }} />} />
      </Routes>
    )
  }

  // The later workspaces route within themselves (pages/<workspace>/index.tsx).
  const workspaces = [
    { path: '/catalog', element: <CatalogWorkspace /> },
    { path: '/rectification', element: <RectificationWorkspace /> },
    { path: '/audit', element: <AuditWorkspace /> },
    { path: '/ops', element: <OpsWorkspace /> },
    { path: '/stats', element: <StatsWorkspace /> },
  ]
  const opens = (path: string) => WORKSPACES.find((w) => w.path === path)?.operations.some(can) ?? false
  return (
    <Routes>
      <Route path="/login" element={<Navigate to="/" replace />} />
      <Route element={<Shell />}>
        <Route index element={<Home />} />
        {can('GET /api/v1/staff/applications') && <Route path="/window" element={<WindowListPage />} />}
        {can('POST /api/v1/staff/applications') && <Route path="/window/new" element={<NewApplicationPage />} />}
        {can('GET /api/v1/staff/applications') && (
          <Route path="/window/:id/receipt" element={<ReceiptPage />} />
        )}
        {can('GET /api/v1/staff/cases/queue') && <Route path="/review" element={<QueuePage />} />}
        {can('GET /api/v1/staff/cases/{id}') && <Route path="/review/cases/:id" element={<CaseDetailPage />} />}
        {workspaces.map(({ path, element }) =>
          opens(path) ? <Route key={path} path={`${path}/*`} element={element} /> : null
        )}
        <Route path="*" element={<Fallback />} />
      </Route>
    </Routes>
  )
}
