// The audit workspace: its own routes under /audit, each registered only when the member may call
// the operations it needs.
import { Route, Routes } from 'react-router-dom'
import { useAuth } from '../../auth/AuthContext'
import { Forbidden } from '../../components/common'
import { AuditPage } from './AuditPage'
import './audit.css'

export function AuditWorkspace() {
  const { can } = useAuth()
  const any =
    can('POST /api/v1/staff/audit/search') ||
    can('GET /api/v1/staff/audit/verify') ||
    can('GET /api/v1/staff/audit/checkpoints')
  return (
    <Routes>
      {any ? <Route index element={<AuditPage />} /> : null}
      <Route path="*" element={<Forbidden />} />
    </Routes>
  )
}
