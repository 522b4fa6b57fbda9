// The routes. A workspace's route is registered only when the member may call the operations it
// needs; any other path under a known workspace shows 无权访问.
import { lazy } from 'react'
import { Navigate, Route, Routes, useLocation } from 'react-router-dom'
import { Loading } from 'tdesign-react'
import { useAuth } from './auth/AuthContext'
import { Forbidden, NotFound } from './components/common'
import { zh } from './i18n/zh'
import { Shell } from './layout/Shell'
import { LoginPage } from './pages/Login'
import { WORKSPACES } from './workspaces'

// Each workspace is its own chunk, fetched when it is first opened (the Shell shows 加载中…
// meanwhile): a member downloads only what their desk uses, and ECharts only with 统计.
const CatalogWorkspace = lazy(() => import('./pages/catalog').then((m) => ({ default: m.CatalogWorkspace })))
const RectificationWorkspace = lazy(() =>
  import('./pages/rectification').then((m) => ({ default: m.RectificationWorkspace }))
)
const AuditWorkspace = lazy(() => import('./pages/audit').then((m) => ({ default: m.AuditWorkspace })))
const OpsWorkspace = lazy(() => import('./pages/ops').then((m) => ({ default: m.OpsWorkspace })))
const StatsWorkspace = lazy(() => import('./pages/stats').then((m) => ({ default: m.StatsWorkspace })))
const WindowListPage = lazy(() => import('./pages/window/WindowList').then((m) => ({ default: m.WindowListPage })))
const NewApplicationPage = lazy(() =>
  import('./pages/window/NewApplication').then((m) => ({ default: m.NewApplicationPage }))
)
const ReceiptPage = lazy(() => import('./pages/window/Receipt').then((m) => ({ default: m.ReceiptPage })))
const QueuePage = lazy(() => import('./pages/review/Queue').then((m) => ({ default: m.QueuePage })))
const CaseDetailPage = lazy(() => import('./pages/review/CaseDetail').then((m) => ({ default: m.CaseDetailPage })))


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
