// 规则变更记录: every submitted change of what decides applications (who, when, which elements,
// the dry run, who decided), newest first; an approver's own department's, an auditor's all.
import { Link } from 'react-router-dom'
import { Card, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, ProblemAlert, usePageTitle } from '../../components/common'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { fieldNames } from './parts'

type RuleChange = Schemas['catalog.RuleChangeOut']

const t = zh.catalog
const c = t.ruleChanges.columns

export function RuleChangesPage() {
  usePageTitle(t.ruleChanges.title)
  const { can } = useAuth()
  const { data: rows = [], loading, problem } = useAnswer(
    () => attempt(() => api.GET('/api/v1/staff/catalog/rule-changes')),
    []
  )

  const opens = can('GET /api/v1/staff/catalog/item-versions/{id}')
  const columns: PrimaryTableCol<RuleChange>[] = [
    {
      colKey: 'implementing_code',
      title: c.item,
      cell: ({ row }) =>
        opens ? <Link to={`/catalog/versions/${encodeURIComponent(row.version_id)}`}>{row.implementing_code}</Link> : row.implementing_code,
    },
    { colKey: 'changed_fields', title: c.fields, cell: ({ row }) => fieldNames(row.changed_fields) },
    { colKey: 'submitted_by', title: c.submittedBy },
    { colKey: 'submitted_at', title: c.submittedAt, cell: ({ row }) => formatDateTime(row.submitted_at) },
    { colKey: 'status', title: c.status, cell: ({ row }) => t.ruleChanges.statuses[row.status] ?? row.status },
    { colKey: 'decided_by', title: c.decidedBy, cell: ({ row }) => row.decided_by ?? '—' },
    {
      colKey: 'dry_run',
      title: c.dryRun,
      cell: ({ row }) =>
        row.dry_run.status === 'done'
          ? t.ruleChanges.dryRunSummary(row.dry_run.cases ?? 0, row.dry_run.changed ?? 0)
          : row.dry_run.note || '—',
    },
    { colKey: 'rejection_reason', title: c.reason, cell: ({ row }) => row.rejection_reason ?? '—' },
  ]

  return (
    <section aria-labelledby="rule-changes-title">
      <h1 id="rule-changes-title" className="page-title">
        {t.ruleChanges.title}
      </h1>
      <ProblemAlert problem={problem} />
      <Card className="panel" title={<h2 className="section-title">{t.ruleChanges.caption}</h2>}>
        <Table<RuleChange> rowKey="id" data={rows} columns={columns} loading={loading} empty={t.ruleChanges.empty} tableLayout="auto" />
      </Card>
    </section>
  )
}
