// The rectification workspace: its own routes under /rectification, each registered only when the
// member may call the operations it needs.
import { Route, Routes } from 'react-router-dom'
import { useAuth } from '../../auth/AuthContext'
import { Forbidden } from '../../components/common'
import { RectificationListPage } from './RectificationList'
import './rectification.css'

export function RectificationWorkspace() {
  const { can } = useAuth()
  return (
    <Routes>
      {can('GET /api/v1/staff/rectifications') ? <Route index element={<RectificationListPage />} /> : null}
      <Route path="*" element={<Forbidden />} />
    </Routes>
  )
}
