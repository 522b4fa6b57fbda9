// The stats workspace: its own routes under /stats, each registered only when the member may call
// the operations it needs.
import { Route, Routes } from 'react-router-dom'
import { useAuth } from '../../auth/AuthContext'
import { Forbidden } from '../../components/common'
import { StatsPage } from './StatsPage'

export function StatsWorkspace() {
  const { can } = useAuth()
  const figures = can('GET /api/v1/stats/intake/monthly') || can('GET /api/v1/stats/catalog/monthly')
  return (
    <Routes>
      <Route index element={figures ? <StatsPage /> : <Forbidden />} />
      <Route path="*" element={<Forbidden />} />
    </Routes>
  )
}
