// A case's materials and the government data in its form, from intake's record of the
// application: how each material was met (uploaded, scanned at the window, or replaced by which
// department's data or certificate), the uploaded files to download, and which department
// supplied each prefilled field.
import { useEffect, useState } from 'react'
import { Button, Card, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { formatDateTime, ProblemAlert } from '../../components/common'
import { saveBlob } from '../../components/download'
import { zh } from '../../i18n/zh'

type Application = Schemas['intake.ApplicationOut']
type Material = Schemas['intake.MaterialOut']
type Source = { field: string; title: string; dataset: string; provider: string; updatedAt: string }

function sourcesOf(application: Application, titles: Record<string, string>): Source[] {
  return Object.entries(application.form_sources ?? {}).map(([field, source]) => {
    const given = (source ?? {}) as Record<string, unknown>
    const text = (key: string) => (typeof given[key] === 'string' ? (given[key] as string) : '')
    return {
      field,
      title: titles[field] || field,
      dataset: text('dataset'),
      provider: text('provider'),
      updatedAt: text('updated_at'),
    }
  })
}

export function CaseMaterials({ applicationId, titles }: { applicationId: string; titles: Record<string, string> }) {
  const { can } = useAuth()
  const [application, setApplication] = useState<Application | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [downloading, setDownloading] = useState<string | null>(null)
  const readable = can('GET /api/v1/staff/applications/{id}')
  const downloadable = can('GET /api/v1/staff/files/{id}')

  useEffect(() => {
    if (!readable) return
    let cancelled = false
    void attempt(() => api.GET('/api/v1/staff/applications/{id}', { params: { path: { id: applicationId } } })).then(
      ({ data, problem }) => {
        if (cancelled) return
        if (data) setApplication(data)
        else setProblem(problem ?? zh.caseDetail.materialsFailed)
      }
    )
    return () => {
      cancelled = true
    }
  }, [applicationId, readable])

  async function download(material: Material) {
    if (!material.evidence_id || downloading) return
    setDownloading(material.evidence_id)
    const { data, problem } = await attempt(() =>
      api.GET('/api/v1/staff/files/{id}', { params: { path: { id: material.evidence_id ?? '' } }, parseAs: 'blob' })
    )
    setDownloading(null)
    if (data) saveBlob(data, material.name)
    else setProblem(problem ?? null)
  }

  const materialColumns: PrimaryTableCol<Material>[] = [
    { colKey: 'name', title: zh.caseDetail.materialColumns.name },
    {
      colKey: 'status',
      title: zh.caseDetail.materialColumns.status,
      cell: ({ row }) => zh.materialStatuses[row.status] ?? row.status,
    },
    {
      colKey: 'note',
      title: zh.caseDetail.materialColumns.note,
      cell: ({ row }) => row.note || '—',
    },
    {
      colKey: 'file',
      title: zh.caseDetail.materialColumns.file,
      cell: ({ row }) =>
        row.evidence_kind === 'file' && row.evidence_id && downloadable ? (
          <Button
            size="small"
            variant="outline"
            loading={downloading === row.evidence_id}
            onClick={() => void download(row)}
            aria-label={zh.caseDetail.downloadMaterial(row.name)}
          >
            {zh.caseDetail.download}
          </Button>
        ) : (
          '—'
        ),
    },
  ]
  const sourceColumns: PrimaryTableCol<Source>[] = [
    { colKey: 'title', title: zh.caseDetail.sourceColumns.field },
    { colKey: 'provider', title: zh.caseDetail.sourceColumns.provider, cell: ({ row }) => row.provider || '—' },
    { colKey: 'dataset', title: zh.caseDetail.sourceColumns.dataset },
    {
      colKey: 'updatedAt',
      title: zh.caseDetail.sourceColumns.updatedAt,
      cell: ({ row }) => (row.updatedAt ? formatDateTime(row.updatedAt) : '—'),
    },
  ]

  if (!readable) return null
  return (
    <>
      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.materials}</h2>}>
        <ProblemAlert problem={problem} />
        {application ? (
          <Table<Material>
            rowKey="index"
            data={application.materials}
            columns={materialColumns}
            empty={zh.caseDetail.noMaterials}
            tableLayout="auto"
          />
        ) : null}
      </Card>
      <Card className="panel" title={<h2 className="section-title">{zh.caseDetail.lookups}</h2>}>
        {application ? (
          <Table<Source>
            rowKey="field"
            data={sourcesOf(application, titles)}
            columns={sourceColumns}
            empty={zh.caseDetail.noLookups}
            tableLayout="auto"
          />
        ) : null}
      </Card>
    </>
  )
}
