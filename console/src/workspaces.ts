import type { Operation } from './auth/operations'
import { zh } from './i18n/zh'

/** The workspaces of the side menu, each opened by any of its operations. */
export const WORKSPACES: readonly { path: string; label: string; operations: readonly Operation[] }[] = [
  { path: '/window', label: zh.menu.window, operations: ['GET /api/v1/staff/applications'] },
  { path: '/review', label: zh.menu.review, operations: ['GET /api/v1/staff/cases/queue'] },
  {
    path: '/catalog',
    label: zh.menu.catalog,
    operations: [
      'GET /api/v1/staff/catalog/item-versions',
      'POST /api/v1/staff/catalog/items',
      'GET /api/v1/staff/catalog/item-versions/{id}',
      'POST /api/v1/staff/catalog/item-versions/{id}/approve',
      'POST /api/v1/staff/catalog/imports',
      'GET /api/v1/staff/catalog/rule-changes',
    ],
  },
  {
    path: '/rectification',
    label: zh.menu.rectification,
    operations: ['GET /api/v1/staff/rectifications', 'GET /api/v1/staff/rectifications/overdue'],
  },
  {
    path: '/audit',
    label: zh.menu.audit,
    operations: [
      'GET /api/v1/staff/audit',
      'POST /api/v1/staff/audit/search',
      'GET /api/v1/staff/audit/verify',
      'GET /api/v1/staff/audit/checkpoints',
    ],
  },
  {
    path: '/ops',
    label: zh.menu.ops,
    operations: [
      'GET /api/v1/staff/ops/status',
      'GET /api/v1/staff/ops/dead-letters/{service}',
      'GET /api/v1/staff/notify/messages',
    ],
  },
  {
    path: '/stats',
    label: zh.menu.stats,
    operations: ['GET /api/v1/stats/intake/monthly', 'GET /api/v1/stats/catalog/monthly'],
  },
]
