// The catalog workspace (事项管理): its own routes under /catalog, each registered only when the
// member may call the operations it needs, and a row of links to its pages.
import { Navigate, NavLink, Route, Routes } from 'react-router-dom'
import { useAuth } from '../../auth/AuthContext'
import type { Operation } from '../../auth/operations'
import { Forbidden } from '../../components/common'
import { zh } from '../../i18n/zh'
import { BundlesPage } from './Bundles'
import { ImportExportPage } from './ImportExport'
import { ItemListPage } from './ItemList'
import { NewItemPage } from './NewItem'
import { RuleChangesPage } from './RuleChanges'
import { SynonymsPage } from './Synonyms'
import { UnmatchedSearchesPage } from './UnmatchedSearches'
import './catalog.css'
import { VersionPage } from './VersionPage'

const t = zh.catalog

type Page = { path: string; label: string; operations: readonly Operation[]; element: JSX.Element; inNav: boolean }

const PAGES: readonly Page[] = [
  { path: '', label: t.nav.items, operations: ['GET /api/v1/staff/catalog/item-versions'], element: <ItemListPage />, inNav: true },
  { path: 'new', label: t.nav.newItem, operations: ['POST /api/v1/staff/catalog/items'], element: <NewItemPage />, inNav: true },
  {
    path: 'versions/:id',
    label: t.version.title,
    operations: ['GET /api/v1/staff/catalog/item-versions/{id}'],
    element: <VersionPage />,
    inNav: false,
  },
  {
    path: 'rule-changes',
    label: t.nav.ruleChanges,
    operations: ['GET /api/v1/staff/catalog/rule-changes'],
    element: <RuleChangesPage />,
    inNav: true,
  },
  {
    path: 'imports',
    label: t.nav.imports,
    operations: ['POST /api/v1/staff/catalog/imports', 'GET /api/v1/staff/catalog/exports'],
    element: <ImportExportPage />,
    inNav: true,
  },
  { path: 'synonyms', label: t.nav.synonyms, operations: ['GET /api/v1/staff/catalog/synonyms'], element: <SynonymsPage />, inNav: true },
  {
    path: 'unmatched',
    label: t.nav.unmatched,
    operations: ['GET /api/v1/staff/catalog/unmatched-searches'],
    element: <UnmatchedSearchesPage />,
    inNav: true,
  },
  { path: 'bundles', label: t.nav.bundles, operations: ['POST /api/v1/staff/catalog/bundles'], element: <BundlesPage />, inNav: true },
]

function CatalogNav({ pages }: { pages: readonly Page[] }) {
  return (
    <nav aria-label={t.nav.label} className="sub-nav">
      {pages
        .filter((page) => page.inNav)
        .map((page) => (
          <NavLink key={page.path} to={page.path ? `/catalog/${page.path}` : '/catalog'} end className="sub-nav-link">
            {page.label}
          </NavLink>
        ))}
    </nav>
  )
}

export function CatalogWorkspace() {
  const { can } = useAuth()
  const allowed = PAGES.filter((page) => page.operations.some(can))
  return (
    <>
      <CatalogNav pages={allowed} />
      <Routes>
        {/* A member who may not list items (an auditor reads the rule-change records) starts
            on the first page they may open. */}
        {!allowed.some((page) => page.path === '') && allowed.some((page) => page.inNav) ? (
          <Route index element={<Navigate to={allowed.find((page) => page.inNav)?.path ?? ''} replace />} />
        ) : null}
        {allowed.map((page) =>
          page.path === '' ? (
            <Route key="index" index element={page.element} />
          ) : (
            <Route key={page.path} path={page.path} element={page.element} />
          )
        )}
        <Route path="*" element={<Forbidden />} />
      </Routes>
    </>
  )
}
