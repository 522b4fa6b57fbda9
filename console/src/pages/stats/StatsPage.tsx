// 统计: 三率一数 and the other figures by department and month, from the service that owns each
// (applications: intake; the catalogue of items: catalog), as charts, tables and CSV exports.
// Each figure shows its numerator and denominator so that a reader can check it.
import { useEffect, useMemo, useState } from 'react'
import { Button, Card, Form } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { saveBlob } from '../../components/download'
import { useAuth } from '../../auth/AuthContext'
import { PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { SelectField, type Choice } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'
import { Chart, type Series } from './Chart'
import './stats.css'

const t = zh.stats

type Figure = { numerator: number; denominator: number; value?: number | null }
type ApplicationRow = Schemas['intake.MonthlyFigures']
type CatalogueRow = Schemas['catalog.CatalogueFigures']
type ApplicationKey = keyof typeof t.applications.figures
type CatalogueKey = keyof typeof t.catalogue.figures

const APPLICATION_KEYS = Object.keys(t.applications.figures) as ApplicationKey[]
const CATALOGUE_KEYS = Object.keys(t.catalogue.figures) as CatalogueKey[]
/** Figures that are averages, not shares: written as a number, left out of the percentage charts. */
const AVERAGES: ReadonlySet<string> = new Set(['visits'])

/** The months offered: the last two years up to this one, newest first. */
function recentMonths(count = 24): string[] {
  const months: string[] = []
  const now = new Date()
  for (let back = 0; back < count; back++) {
    const day = new Date(now.getFullYear(), now.getMonth() - back, 1)
    months.push(`${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, '0')}`)
  }
  return months
}

function figureValue(figure: Figure): number | null {
  return figure.denominator ? figure.numerator / figure.denominator : null
}

/** As the CSV writes it: a share as a percentage with two decimals, an average with two decimals. */
export function formatFigure(key: string, figure: Figure): string {
  const value = figureValue(figure)
  const shown = value === null ? '—' : AVERAGES.has(key) ? value.toFixed(2) : `${(value * 100).toFixed(2)}%`
  return `${shown}（${figure.numerator}/${figure.denominator}）`
}

function total<K extends string>(rows: readonly Record<K, Figure>[], key: K): Figure {
  let numerator = 0
  let denominator = 0
  for (const row of rows) {
    numerator += row[key].numerator
    denominator += row[key].denominator
  }
  return { numerator, denominator }
}

function percent(figure: Figure): number | null {
  const value = figureValue(figure)
  return value === null ? null : Math.round(value * 10000) / 100
}

/** Series of shares (percentages) for each category (a month or a department). */
function seriesOf<K extends string>(
  keys: readonly K[],
  names: Record<K, string>,
  groups: readonly (readonly Record<K, Figure>[])[]
): Series[] {
  return keys
    .filter((key) => !AVERAGES.has(key))
    .map((key) => ({ name: names[key], values: groups.map((rows) => (rows.length ? percent(total(rows, key)) : null)) }))
}

function summaryOf(title: string, categories: string[], series: Series[]): string {
  const parts = categories.map(
    (category, index) =>
      `${category} ${series
        .map((s) => `${s.name}${s.values[index] === null ? '—' : `${s.values[index]}%`}`)
        .join('，')}`
  )
  return t.chartSummary(title, parts)
}

async function download(path: '/api/v1/stats/intake/monthly.csv' | '/api/v1/stats/catalog/monthly.csv', query: Query, name: string) {
  const { data, problem } = await attempt(() => api.GET(path, { params: { query }, parseAs: 'blob' }))
  if (!data) return problem ?? zh.errors.unknown
  saveBlob(data, name)
  return null
}

type Query = { start_month: string; end_month: string; department?: string }

export function StatsPage() {
  usePageTitle(t.title)
  const { state, can } = useAuth()
  const ownDepartment = state.status === 'ready' ? state.me.department ?? null : null
  const months = useMemo(() => recentMonths(), [])
  const monthChoices: Choice[] = months.map((m) => ({ value: m, label: m }))
  const [start, setStart] = useState(months[5])
  const [end, setEnd] = useState(months[0])
  const [department, setDepartment] = useState('')
  const [departments, setDepartments] = useState<string[]>([])
  const [query, setQuery] = useState<Query>({ start_month: months[5], end_month: months[0] })
  const [notice, setNotice] = useState<string | null>(null)
  const mayApplications = can('GET /api/v1/stats/intake/monthly')
  const mayCatalogue = can('GET /api/v1/stats/catalog/monthly')

  useEffect(() => {
    if (ownDepartment) return
    void attempt(() => api.GET('/api/v1/facets')).then(({ data }) => {
      if (data) setDepartments(data.departments.map((d) => d.name))
    })
  }, [ownDepartment])

  const { data, loading, problem, setProblem } = useAnswer(async () => {
    const [fromIntake, fromCatalog] = await Promise.all([
      mayApplications ? attempt(() => api.GET('/api/v1/stats/intake/monthly', { params: { query } })) : null,
      mayCatalogue ? attempt(() => api.GET('/api/v1/stats/catalog/monthly', { params: { query } })) : null,
    ])
    // Either figure is shown when it could be read, beside the other's refusal.
    return {
      data: { applications: fromIntake?.data ?? null, catalogue: fromCatalog?.data ?? null },
      problem: fromIntake?.problem ?? fromCatalog?.problem,
    }
  }, [query, mayApplications, mayCatalogue])
  const applications = data?.applications ?? null
  const catalogue = data?.catalogue ?? null

  function submit() {
    if (end < start) {
      setProblem(t.periodBackwards)
      return
    }
    setNotice(null)
    setQuery({ start_month: start, end_month: end, ...(department ? { department } : {}) })
  }

  async function exportTable(path: '/api/v1/stats/intake/monthly.csv' | '/api/v1/stats/catalog/monthly.csv', kind: string) {
    const name = `${kind}-${query.start_month}-${query.end_month}.csv`
    const refused = await download(path, query, name)
    setProblem(refused)
    setNotice(refused ? null : t.exported(name))
  }

  return (
    <section aria-labelledby="stats-title">
      <PageHead id="stats-title" title={t.title} />
      <Card className="panel" title={<h2 className="section-title">{t.filters}</h2>}>
        <Form layout="inline" colon={false} onSubmit={submit}>
          <SelectField label={t.startMonth} name="start_month" value={start} onChange={setStart} choices={monthChoices} />
          <SelectField label={t.endMonth} name="end_month" value={end} onChange={setEnd} choices={monthChoices} />
          {ownDepartment ? (
            <p className="stats-scope">{t.ownDepartment(ownDepartment)}</p>
          ) : (
            <SelectField
              label={t.department}
              name="department"
              value={department}
              onChange={setDepartment}
              choices={departments.map((d) => ({ value: d, label: d }))}
              placeholder={t.allDepartments}
            />
          )}
          <Button type="submit" theme="primary" loading={loading}>
            {t.query}
          </Button>
        </Form>
      </Card>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      {loading ? <p role="status">{t.loading}</p> : null}
      {applications ? (
        <ApplicationFigures figures={applications} onExport={() => void exportTable('/api/v1/stats/intake/monthly.csv', 'applications')} mayExport={can('GET /api/v1/stats/intake/monthly.csv')} />
      ) : null}
      {catalogue ? (
        <CatalogueFigures figures={catalogue} onExport={() => void exportTable('/api/v1/stats/catalog/monthly.csv', 'catalogue')} mayExport={can('GET /api/v1/stats/catalog/monthly.csv')} />
      ) : null}
    </section>
  )
}

function ApplicationFigures({
  figures,
  onExport,
  mayExport,
}: {
  figures: Schemas['intake.MonthlyStatistics']
  onExport: () => void
  mayExport: boolean
}) {
  const names = t.applications.figures
  const { rows, months } = figures
  const departments = useMemo(() => [...new Set(rows.map((r) => r.department))], [rows])
  const byMonth = useMemo(() => {
    const series = seriesOf(APPLICATION_KEYS, names, months.map((m) => rows.filter((r) => r.month === m)))
    return { series, summary: summaryOf(t.applications.byMonth, months, series) }
  }, [rows, months, names])
  const byDepartment = useMemo(() => {
    const series = seriesOf(APPLICATION_KEYS, names, departments.map((d) => rows.filter((r) => r.department === d)))
    return { series, summary: summaryOf(t.applications.byDepartment, departments, series) }
  }, [rows, departments, names])

  return (
    <Card
      className="panel"
      title={<h2 className="section-title">{t.applications.title}</h2>}
      actions={
        mayExport ? (
          <Button theme="default" variant="outline" onClick={onExport}>
            {t.applications.export}
          </Button>
        ) : null
      }
    >
      {rows.length ? (
        <div className="stats-charts">
          <figure>
            <figcaption>{t.applications.byMonth}</figcaption>
            <Chart kind="line" categories={months} series={byMonth.series} summary={byMonth.summary} unit="%" />
          </figure>
          <figure>
            <figcaption>{t.applications.byDepartment}</figcaption>
            <Chart kind="bar" categories={departments} series={byDepartment.series} summary={byDepartment.summary} unit="%" />
          </figure>
        </div>
      ) : null}
      <FigureTable<ApplicationRow, ApplicationKey>
        caption={t.applications.caption}
        countTitle={t.applications.count}
        count={(row) => row.applications}
        keys={APPLICATION_KEYS}
        names={names}
        rows={rows}
        testId="application-figures"
      />
    </Card>
  )
}

function CatalogueFigures({
  figures,
  onExport,
  mayExport,
}: {
  figures: Schemas['catalog.MonthlyCatalogue']
  onExport: () => void
  mayExport: boolean
}) {
  const names = t.catalogue.figures
  const { rows, months } = figures
  const last = months[months.length - 1]
  const byDepartment = useMemo(() => {
    const latest = rows.filter((r) => r.month === last)
    const departments = latest.map((r) => r.department)
    const series = seriesOf(CATALOGUE_KEYS, names, latest.map((r) => [r]))
    return { departments, series, summary: summaryOf(t.catalogue.byDepartment, departments, series) }
  }, [rows, last, names])

  return (
    <Card
      className="panel"
      title={<h2 className="section-title">{t.catalogue.title}</h2>}
      actions={
        mayExport ? (
          <Button theme="default" variant="outline" onClick={onExport}>
            {t.catalogue.export}
          </Button>
        ) : null
      }
    >
      {byDepartment.departments.length ? (
        <figure>
          <figcaption>{t.catalogue.byDepartment}</figcaption>
          <Chart
            kind="bar"
            categories={byDepartment.departments}
            series={byDepartment.series}
            summary={byDepartment.summary}
            unit="%"
          />
        </figure>
      ) : null}
      <FigureTable<CatalogueRow, CatalogueKey>
        caption={t.catalogue.caption}
        countTitle={t.catalogue.count}
        count={(row) => row.items}
        keys={CATALOGUE_KEYS}
        names={names}
        rows={rows}
        testId="catalogue-figures"
      />
    </Card>
  )
}

/** The accessible view of every figure: a native table with a caption and column headers. */
function FigureTable<Row extends { department: string; month: string } & Record<Key, Figure>, Key extends string>({
  caption,
  countTitle,
  count,
  keys,
  names,
  rows,
  testId,
}: {
  caption: string
  countTitle: string
  count: (row: Row) => number
  keys: readonly Key[]
  names: Record<Key, string>
  rows: readonly Row[]
  testId: string
}) {
  return (
    <div className="stats-table-wrap">
      <table className="stats-table" data-testid={testId}>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{t.columns.department}</th>
            <th scope="col">{t.columns.month}</th>
            <th scope="col">{countTitle}</th>
            {keys.map((key) => (
              <th scope="col" key={key}>
                {names[key]}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length ? (
            rows.map((row) => (
              <tr key={`${row.department} ${row.month}`} data-row={`${row.department} ${row.month}`}>
                <th scope="row">{row.department}</th>
                <td>{row.month}</td>
                <td data-figure="count">{count(row)}</td>
                {keys.map((key) => (
                  <td key={key} data-figure={key}>
                    {formatFigure(key, row[key])}
                  </td>
                ))}
              </tr>
            ))
          ) : (
            <tr>
              <td colSpan={keys.length + 3}>{t.empty}</td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  )
}
