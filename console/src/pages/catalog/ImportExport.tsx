// 导入导出: import an item list (CSV or JSON) as a job, then its progress and, for a bad file,
// every bad row with the reason (nothing is imported); export my department's items.
import { useEffect, useState } from 'react'
import { Button, Card, Form, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { ProblemAlert, usePageTitle } from '../../components/common'
import { saveBlob } from '../../components/download'
import { CheckboxField, FileField } from '../../components/fields'
import { zh } from '../../i18n/zh'

type Job = Schemas['catalog.JobOut']
type RowError = { key: string; row: string; column: string; reason: string }

const t = zh.catalog
const i = t.imports
const POLL_MS = 1000

const errorColumns: PrimaryTableCol<RowError>[] = [
  { colKey: 'row', title: i.errorColumns.row },
  { colKey: 'column', title: i.errorColumns.column },
  { colKey: 'reason', title: i.errorColumns.reason },
]

function text(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : ''
}

function rowErrors(job: Job): RowError[] {
  return job.errors.map((error, index) => ({
    key: String(index),
    row: text(error.row) || i.wholeFile,
    column: text(error.column) || '—',
    reason: text(error.reason) || text(error.detail),
  }))
}

function codes(result: Job['result'], key: string): string[] {
  const value = result?.[key]
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []
}

export function ImportExportPage() {
  usePageTitle(i.title)
  const { can } = useAuth()
  const [file, setFile] = useState<File | null>(null)
  const [publishComplete, setPublishComplete] = useState(false)
  const [job, setJob] = useState<Job | null>(null)
  const [busy, setBusy] = useState<string | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  // Poll the job until it has finished.
  useEffect(() => {
    if (!job || job.status === 'succeeded' || job.status === 'failed') return
    const timer = window.setTimeout(() => {
      void attempt(() => api.GET('/api/v1/staff/catalog/jobs/{id}', { params: { path: { id: job.id } } })).then(
        ({ data, problem }) => {
          if (data) setJob(data)
          else setProblem(problem ?? null)
        }
      )
    }, POLL_MS)
    return () => window.clearTimeout(timer)
  }, [job])

  async function startImport() {
    if (!file) {
      setProblem(i.chooseFile)
      return
    }
    if (busy) return
    setBusy('import')
    setNotice(null)
    const format = file.name.toLowerCase().endsWith('.csv') ? 'csv' : 'json'
    const content = await file.text()
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/catalog/imports', {
        params: { query: { format, publish_complete: publishComplete } },
        body: content,
        // The file goes as it is: its own text, not a JSON string of it.
        bodySerializer: (body) => body,
        headers: { 'Content-Type': format === 'csv' ? 'text/csv' : 'application/json' },
      })
    )
    setBusy(null)
    if (data) {
      setJob(data)
      setProblem(null)
    } else setProblem(problem ?? null)
  }

  async function exportAs(format: 'csv' | 'json') {
    if (busy) return
    setBusy(format)
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/staff/catalog/exports', { params: { query: { format } }, parseAs: 'blob' })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    saveBlob(data, `catalogue.${format}`)
    setNotice(i.exported)
  }

  const errors = job ? rowErrors(job) : []
  return (
    <section aria-labelledby="imports-title">
      <h1 id="imports-title" className="page-title">
        {i.title}
      </h1>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}

      {can('POST /api/v1/staff/catalog/imports') ? (
        <Card className="panel" title={<h2 className="section-title">{i.importTitle}</h2>}>
          <Form labelAlign="top" colon={false} onSubmit={() => void startImport()}>
            <FileField
              label={i.file}
              name="items"
              accept=".csv,.json,text/csv,application/json"
              hint={i.fileHint}
              onChange={setFile}
            />
            <CheckboxField label={i.publishComplete} name="publish_complete" value={publishComplete} onChange={setPublishComplete} />
            <Button type="submit" theme="primary" loading={busy === 'import'}>
              {i.start}
            </Button>
          </Form>
        </Card>
      ) : null}

      {job ? (
        <Card className="panel" title={<h2 className="section-title">{i.jobTitle}</h2>}>
          <dl className="fields">
            <dt>{i.jobStatus}</dt>
            <dd data-field="job-status">{i.jobStatuses[job.status] ?? job.status}</dd>
            <dt>{i.jobProgress}</dt>
            <dd>{i.progress(job.done, job.total)}</dd>
          </dl>
          {job.problem && typeof job.problem.detail === 'string' ? <p>{job.problem.detail}</p> : null}
          {job.status === 'succeeded' && job.result ? (
            <>
              <p role="status">
                {i.result(codes(job.result, 'created_codes').length, codes(job.result, 'updated_codes').length, codes(job.result, 'unchanged_codes').length)}
              </p>
              {codes(job.result, 'review_required_codes').length ? (
                <p>{i.reviewRequired(codes(job.result, 'review_required_codes').join(zh.app.listSeparator))}</p>
              ) : null}
            </>
          ) : null}
          {errors.length ? (
            <>
              <h3 className="section-title">{i.errorsCaption}</h3>
              <Table<RowError> rowKey="key" data={errors} columns={errorColumns} tableLayout="auto" />
            </>
          ) : null}
        </Card>
      ) : null}

      {can('GET /api/v1/staff/catalog/exports') ? (
        <Card className="panel" title={<h2 className="section-title">{i.exportTitle}</h2>}>
          <p className="muted">{i.exportHint}</p>
          <Space>
            <Button theme="default" variant="outline" loading={busy === 'csv'} onClick={() => void exportAs('csv')}>
              {i.exportCsv}
            </Button>
            <Button theme="default" variant="outline" loading={busy === 'json'} onClick={() => void exportAs('json')}>
              {i.exportJson}
            </Button>
          </Space>
        </Card>
      ) : null}
    </section>
  )
}
