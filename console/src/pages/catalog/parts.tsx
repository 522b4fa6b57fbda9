// Pieces the catalog pages share: the status tag, a version's dry-run result (counts and the
// applications whose outcome would change), element names.
import { Table, Tag } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import type { Schemas } from '../../api/client'
import { formatDateTime } from '../../components/common'
import { zh } from '../../i18n/zh'

type DryRun = Schemas['catalog.DryRunOut']
type Change = Schemas['catalog.DryRunChange']

const t = zh.catalog

const STATUS_THEMES: Record<string, 'default' | 'primary' | 'warning' | 'success' | 'danger'> = {
  draft: 'default',
  submitted: 'warning',
  published: 'success',
  withdrawn: 'danger',
}

export function StatusTag({ status }: { status: string }) {
  return (
    <Tag theme={STATUS_THEMES[status] ?? 'default'} variant="light-outline">
      {t.statuses[status] ?? status}
    </Tag>
  )
}

export function outcomeText(outcome: string | null | undefined): string {
  if (!outcome) return '—'
  return t.dryRun.outcomes[outcome] ?? outcome
}

const changeColumns: PrimaryTableCol<Change>[] = [
  { colKey: 'application_id', title: t.dryRun.columns.application },
  { colKey: 'decided_at', title: t.dryRun.columns.decidedAt, cell: ({ row }) => formatDateTime(row.decided_at) },
  { colKey: 'actual', title: t.dryRun.columns.actual, cell: ({ row }) => outcomeText(row.actual) },
  { colKey: 'would', title: t.dryRun.columns.would, cell: ({ row }) => outcomeText(row.would) },
]

/** A dry run's counts and the table of applications whose outcome would change. */
export function DryRunResult({ result, headingId }: { result: DryRun; headingId: string }) {
  if (result.status !== 'done') {
    return (
      <p role="status">
        {result.status === 'unavailable' ? t.dryRun.unavailable : null}
        {result.note ? ` ${result.note}` : null}
      </p>
    )
  }
  return (
    <div data-testid="dry-run-result">
      <ul className="counts" aria-label={t.dryRun.title}>
        <li>{t.dryRun.cases(result.cases ?? 0)}</li>
        <li>{t.dryRun.changed(result.changed ?? 0)}</li>
        <li>{t.dryRun.newlyApproved(result.newly_approved ?? 0)}</li>
        <li>{t.dryRun.newlyDenied(result.newly_denied ?? 0)}</li>
      </ul>
      {result.note ? <p className="muted">{result.note}</p> : null}
      <h3 id={headingId} className="section-title">
        {t.dryRun.caption}
      </h3>
      <Table<Change>
        rowKey="application_id"
        data={result.changes ?? []}
        columns={changeColumns}
        empty={t.dryRun.noneChanged}
        tableLayout="auto"
      />
    </div>
  )
}

export function fieldNames(fields: readonly string[]): string {
  return fields.map((field) => t.ruleChanges.fieldNames[field] ?? field).join(zh.app.listSeparator)
}
