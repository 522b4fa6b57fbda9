// The rectification workspace: its own routes under /rectification, each registered only when the member may call
// the operations it needs.
import { Route, Routes } from 'react-router-dom'
import { ComingSoon, Forbidden } from '../../components/common'
import { zh } from '../../i18n/zh'

export function RectificationWorkspace() {
  return (
    <Routes>
      <Route index element={<ComingSoon title={zh.menu.rectification} />} />
      <Route path="*" element={<Forbidden />} />
    </Routes>
  )
}
