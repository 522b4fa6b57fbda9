// 受理回执: what the applicant takes home from the window, printable.
import { Fragment, useEffect, useState } from 'react'
import type { ReactNode } from 'react'
import { useLocation, useNavigate, useParams } from 'react-router-dom'
import { Button, Loading, Space } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { formatDate, formatDateTime, ProblemAlert, usePageTitle } from '../../components/common'
import { zh } from '../../i18n/zh'

type Application = Schemas['intake.ApplicationOut']
type Summary = Schemas['intake.StaffApplicationSummary']
type Applicant = Schemas['intake.ApplicantOnScreen']

type Shown = {
  id: string
  itemName: string
  applicant: Applicant
  department: string
  status: string
  statusName: string
  acceptedAt: string | null
  dueDate: string | null
  toleratedUntil: string | null
}

function fromApplication(application: Application): Shown {
  const accepted = [...application.timeline].reverse().find((entry) => entry.to_status === 'accepted')
  return {
    id: application.id,
    itemName: application.item_name,
    applicant: application.applicant,
    department: application.department,
    status: application.status,
    statusName: application.status_name,
    acceptedAt: accepted?.at ?? null,
    dueDate: application.due_date,
    toleratedUntil: application.tolerated_until,
  }
}

function fromSummary(summary: Summary): Shown {
  return {
    id: summary.id,
    itemName: summary.item_name,
    applicant: summary.applicant,
    department: summary.department,
    status: summary.status,
    statusName: summary.status_name,
    acceptedAt: null,
    dueDate: summary.due_date,
    toleratedUntil: summary.tolerated_until,
  }
}

export function ReceiptPage() {
  usePageTitle(zh.receipt.title)
  const { id = '' } = useParams()
  const location = useLocation()
  const navigate = useNavigate()
  const given = (location.state as { application?: Application } | null)?.application
  const [shown, setShown] = useState<Shown | null>(given && given.id === id ? fromApplication(given) : null)
  const [problem, setProblem] = useState<string | null>(null)

  useEffect(() => {
    if (shown) return
    let cancelled = false
    // No staff route answers one application by id: the window's list holds it.
    void attempt(() => api.GET('/api/v1/staff/applications')).then(({ data, problem }) => {
      if (cancelled) return
      if (!data) {
        setProblem(problem ?? null)
        return
      }
      const found = data.find((row) => row.id === id)
      if (found) setShown(fromSummary(found))
      else setProblem(zh.receipt.notFound)
    })
    return () => {
      cancelled = true
    }
  }, [id, shown])

  // One heading, 受理回执, the printed receipt's own; the buttons above it are not printed.
  const fields: [string, ReactNode][] = shown
    ? [
        [zh.receipt.number, shown.id],
        [zh.receipt.applicant, `${shown.applicant.name}（${shown.applicant.id_number}）`],
        [zh.receipt.item, shown.itemName],
        [zh.receipt.department, shown.department],
        [zh.receipt.status, shown.statusName],
        [zh.receipt.acceptedAt, formatDateTime(shown.acceptedAt)],
        [
          zh.receipt.deadline,
          <>
            {formatDate(shown.dueDate)}
            {shown.toleratedUntil ? <div>{zh.window.toleratedUntil(shown.toleratedUntil)}</div> : null}
          </>,
        ],
      ]
    : []
  return (
    <section aria-labelledby="receipt-title" className="receipt-page">
      <div className="page-actions no-print">
        <Space>
          <Button theme="primary" onClick={() => window.print()} disabled={!shown}>
            {zh.receipt.print}
          </Button>
          <Button theme="default" variant="outline" onClick={() => navigate('/window')}>
            {zh.receipt.back}
          </Button>
        </Space>
      </div>
      <ProblemAlert problem={problem} />
      <article className="receipt">
        <h1 id="receipt-title" className="receipt-heading">
          {zh.receipt.heading}
        </h1>
        {!shown && !problem ? <Loading text={zh.app.loading} /> : null}
        {shown && (shown.status === 'submitted' || shown.status === 'draft') ? (
          <p role="status">{zh.receipt.notAcceptedYet}</p>
        ) : null}
        {shown ? (
          // The application number's <dd> is marked data-field="application-number" for the tests.
          <dl className="receipt-fields">
            {fields.map(([term, value], index) => (
              <Fragment key={term}>
                <dt>{term}</dt>
                <dd data-field={index === 0 ? 'application-number' : undefined}>{value}</dd>
              </Fragment>
            ))}
          </dl>
        ) : null}
      </article>
    </section>
  )
}
