// The ops workspace (运维): its own routes under /ops, each registered only when the member may
// call the operation it needs, and a row of links to them. A member who may not see the health
// table (notify_admin alone) starts at the first page they may see.
import { Navigate, NavLink, Route, Routes } from 'react-router-dom'
import { useAuth } from '../../auth/AuthContext'
import type { Operation } from '../../auth/operations'
import { Forbidden } from '../../components/common'
import { zh } from '../../i18n/zh'
import { DeadLettersPage } from './DeadLetters'
import { DeliveriesPage } from './Deliveries'
import { HealthPage } from './Health'
import './ops.css'

const t = zh.ops.nav

type Page = { path: string; label: string; operation: Operation; element: JSX.Element }

const PAGES: readonly Page[] = [
  { path: '', label: t.health, operation: 'GET /api/v1/staff/ops/status', element: <HealthPage /> },
  {
    path: 'dead-letters',
    label: t.deadLetters,
    operation: 'GET /api/v1/staff/ops/dead-letters/{service}',
    element: <DeadLettersPage />,
  },
  { path: 'deliveries', label: t.deliveries, operation: 'GET /api/v1/staff/notify/messages', element: <DeliveriesPage /> },
]

export function OpsWorkspace() {
  const { can } = useAuth()
  const allowed = PAGES.filter((page) => can(page.operation))
  const first = allowed[0]
  return (
    <>
      <nav aria-label={t.label} className="ops-nav">
        {allowed.map((page) => (
          <NavLink key={page.path} to={page.path ? `/ops/${page.path}` : '/ops'} end className="ops-nav-link">
            {page.label}
          </NavLink>
        ))}
      </nav>
      <Routes>
        {allowed.map((page) =>
          page.path === '' ? (
            <Route key="index" index element={page.element} />
          ) : (
            <Route key={page.path} path={page.path} element={page.element} />
          )
        )}
        {first && first.path !== '' ? <Route index element={<Navigate to={`/ops/${first.path}`} replace />} /> : null}
        <Route path="*" element={<Forbidden />} />
      </Routes>
    </>
  )
}
