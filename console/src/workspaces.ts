import type { Operation } from './auth/operations'
import { zh } from './i18n/zh'

/** The workspaces of the side menu, each with the operation that opens it. */
export const WORKSPACES: readonly { path: string; label: string; operation: Operation }[] = [
  { path: '/window', label: zh.menu.window, operation: 'GET /api/v1/staff/applications' },
  { path: '/review', label: zh.menu.review, operation: 'GET /api/v1/staff/cases/queue' },
  { path: '/catalog', label: zh.menu.catalog, operation: 'POST /api/v1/staff/catalog/items' },
  { path: '/rectification', label: zh.menu.rectification, operation: 'GET /api/v1/staff/rectifications/overdue' },
  { path: '/audit', label: zh.menu.audit, operation: 'GET /api/v1/staff/audit' },
  { path: '/ops', label: zh.menu.ops, operation: 'GET /api/v1/staff/ops/dead-letters/{service}' },
  { path: '/stats', label: zh.menu.stats, operation: 'GET /api/v1/stats/intake' },
]
