// The stats workspace: its own routes under /stats, each registered only when the member may call
// the operations it needs.
import { Route, Routes } from 'react-router-dom'
import { ComingSoon, Forbidden } from '../../components/common'
import { zh } from '../../i18n/zh'

export function StatsWorkspace() {
  return (
    <Routes>
      <Route index element={<ComingSoon title={zh.menu.stats} />} />
      <Route path="*" element={<Forbidden />} />
    </Routes>
  )
}
