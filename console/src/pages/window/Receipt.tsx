// 受理回执: what the applicant takes home from the window, printable: who applied (masked), the
// item, the deadline, and the materials received and how each was met.
import { Fragment, useEffect, useState } from 'react'
import type { ReactNode } from 'react'
import { useLocation, useNavigate, useParams } from 'react-router-dom'
import { Button, Loading, Space } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import { formatDate, formatDateTime, ProblemAlert, usePageTitle } from '../../components/common'
import { zh } from '../../i18n/zh'

type Application = Schemas['intake.ApplicationOut']

function acceptedAt(application: Application): string | null {
  return [...application.timeline].reverse().find((entry) => entry.to_status === 'accepted')?.at ?? null
}

export function ReceiptPage() {
  usePageTitle(zh.receipt.title)
  const { id = '' } = useParams()
  const location = useLocation()
  const navigate = useNavigate()
  // Straight after filing, the filing's answer; opened again from the list, read anew.
  const given = (location.state as { application?: Application } | null)?.application
  const [shown, setShown] = useState<Application | null>(given && given.id === id ? given : null)
  const [problem, setProblem] = useState<string | null>(null)

  useEffect(() => {
    if (shown) return
    let cancelled = false
    void attempt(() => api.GET('/api/v1/staff/applications/{id}', { params: { path: { id } } })).then(
      ({ data, problem }) => {
        if (cancelled) return
        if (data) setShown(data)
        else setProblem(problem ?? zh.receipt.notFound)
      }
    )
    return () => {
      cancelled = true
    }
  }, [id, shown])

  // One heading, 受理回执, the printed receipt's own; the buttons above it are not printed.
  const fields: [string, ReactNode][] = shown
    ? [
        [zh.receipt.number, shown.id],
        [zh.receipt.applicant, `${shown.applicant.name}（${shown.applicant.id_number}）`],
        [zh.receipt.item, shown.item_name],
        [zh.receipt.department, shown.department],
        [zh.receipt.status, shown.status_name],
        [zh.receipt.acceptedAt, formatDateTime(acceptedAt(shown))],
        [
          zh.receipt.deadline,
          <>
            {formatDate(shown.due_date)}
            {shown.tolerated_until ? <div>{zh.window.toleratedUntil(shown.tolerated_until)}</div> : null}
          </>,
        ],
        [
          zh.receipt.materials,
          shown.materials.length ? (
            <ul className="receipt-materials">
              {shown.materials.map((material) => (
                <li key={material.index}>
                  {zh.receipt.material(
                    material.name,
                    zh.materialStatuses[material.status] ?? material.status
                  )}
                </li>
              ))}
            </ul>
          ) : (
            zh.app.none
          ),
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
