// 综合受理: the window's applications, 受理 / 不予受理, and the way to a receipt or a new filing.
import { useState } from 'react'
import { Link, useNavigate } from 'react-router-dom'
import { Button, Card, Form, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { useAuth } from '../../auth/AuthContext'
import { DialogButtons } from '../../components/ActionDialog'
import { formatDate, formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { FilterBar, SelectField, TextAreaField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'

type Summary = Schemas['intake.StaffApplicationSummary']

const STATUS_CHOICES = Object.entries(zh.statuses).map(([value, label]) => ({ value, label }))
const RECEIPT_STATUSES = new Set(['accepted', 'under_review', 'correction_requested', 'resubmitted', 'approved', 'certificate_failed', 'denied', 'completed', 'delivered'])

export function WindowListPage() {
  usePageTitle(zh.window.title)
  const { can } = useAuth()
  const navigate = useNavigate()
  const [status, setStatus] = useState('')
  const [notice, setNotice] = useState<string | null>(null)
  const [refusing, setRefusing] = useState<Summary | null>(null)
  const [reason, setReason] = useState('')
  const [busy, setBusy] = useState<string | null>(null)

  const { data: rows = [], loading, problem, setProblem, reload: load } = useAnswer(
    () => attempt(() => api.GET('/api/v1/staff/applications', { params: { query: status ? { status } : {} } })),
    [status]
  )

  async function accept(row: Summary) {
    if (busy) return
    setBusy(row.id)
    setNotice(null)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/applications/{id}/accept', { params: { path: { id: row.id } } })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    navigate(`/window/${encodeURIComponent(data.id)}/receipt`, { state: { application: data } })
  }

  async function notAccept() {
    if (!refusing || busy) return
    if (reason.trim().length < 2) {
      setProblem(zh.window.reasonTooShort)
      return
    }
    setBusy(refusing.id)
    const { data, problem } = await attempt(() =>
      api.POST('/api/v1/staff/applications/{id}/not-accept', {
        params: { path: { id: refusing.id } },
        body: { reason: reason.trim() },
      })
    )
    setBusy(null)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setRefusing(null)
    setReason('')
    setProblem(null)
    setNotice(zh.window.notAccepted)
    void load()
  }

  const columns: PrimaryTableCol<Summary>[] = [
    { colKey: 'id', title: zh.window.columns.number },
    { colKey: 'item_name', title: zh.window.columns.item },
    { colKey: 'applicant', title: zh.window.columns.applicant, cell: ({ row }) => row.applicant.name },
    { colKey: 'status_name', title: zh.window.columns.status },
    { colKey: 'submitted_at', title: zh.window.columns.submittedAt, cell: ({ row }) => formatDateTime(row.submitted_at) },
    {
      colKey: 'due_date',
      title: zh.window.columns.deadline,
      cell: ({ row }) => (
        <>
          {formatDate(row.due_date)}
          {row.tolerated_until ? <div className="muted">{zh.window.toleratedUntil(row.tolerated_until)}</div> : null}
        </>
      ),
    },
    {
      colKey: 'actions',
      title: zh.window.columns.actions,
      cell: ({ row }) => (
        <Space size="small" breakLine>
          {row.status === 'submitted' && can('POST /api/v1/staff/applications/{id}/accept') ? (
            <Button size="small" theme="primary" loading={busy === row.id} onClick={() => void accept(row)}>
              {zh.window.accept}
            </Button>
          ) : null}
          {row.status === 'submitted' && can('POST /api/v1/staff/applications/{id}/not-accept') ? (
            <Button
              size="small"
              theme="danger"
              variant="outline"
              onClick={() => {
                setRefusing(row)
                setReason('')
              }}
            >
              {zh.window.notAccept}
            </Button>
          ) : null}
          {RECEIPT_STATUSES.has(row.status) ? (
            <Link to={`/window/${encodeURIComponent(row.id)}/receipt`}>{zh.window.receipt}</Link>
          ) : null}
        </Space>
      ),
    },
  ]

  return (
    <section aria-labelledby="window-title">
      <PageHead id="window-title" title={zh.window.title}>
        {can('POST /api/v1/staff/applications') ? (
          <Button theme="primary" onClick={() => navigate('/window/new')}>
            {zh.window.newApplication}
          </Button>
        ) : null}
      </PageHead>
      <ProblemAlert problem={problem} />
      {notice ? <p role="status">{notice}</p> : null}
      {refusing ? (
        <Card className="panel" title={<h2 className="section-title">{zh.window.notAcceptTitle(refusing.id)}</h2>}>
          <Form labelAlign="top" colon={false} onSubmit={() => void notAccept()}>
            <TextAreaField
              label={zh.window.notAcceptReason}
              name="reason"
              value={reason}
              onChange={setReason}
              required
              maxLength={500}
            />
            <DialogButtons
              confirm={zh.window.confirmNotAccept}
              theme="danger"
              busy={busy === refusing.id}
              onCancel={() => setRefusing(null)}
            />
          </Form>
        </Card>
      ) : null}
      <Card className="panel" title={<h2 className="section-title">{zh.window.listTitle}</h2>}>
        <FilterBar onSubmit={() => void load()}>
          <SelectField
            label={zh.window.statusFilter}
            name="status"
            value={status}
            onChange={setStatus}
            choices={STATUS_CHOICES}
            placeholder={zh.window.allStatuses}
          />
        </FilterBar>
        <Table<Summary>
          rowKey="id"
          data={rows}
          columns={columns}
          loading={loading}
          empty={zh.window.empty}
          tableLayout="auto"
        />
      </Card>
    </section>
  )
}
