// 整改: the department's rectifications of bad ratings (差评), by state, with the rating and the
// working days to the deadline; reply, record the return visit (回访) and close, each offered only
// when the case is in the state for it and the member may call it.
import { useState } from 'react'
import { Button, Card, Form, Space, Table } from 'tdesign-react'
import type { PrimaryTableCol } from 'tdesign-react'
import { api, attempt, type Schemas } from '../../api/client'
import type { paths } from '../../api/schema'
import { useAuth } from '../../auth/AuthContext'
import type { Operation } from '../../auth/operations'
import { ActionDialog, DialogButtons } from '../../components/ActionDialog'
import { formatDate, formatDateTime, PageHead, ProblemAlert, usePageTitle } from '../../components/common'
import { FilterBar, SelectField, TextAreaField } from '../../components/fields'
import { useAnswer } from '../../components/useAnswer'
import { zh } from '../../i18n/zh'

const t = zh.rectification

type Row = Schemas['intake.RectificationListItem']
type Answer = Schemas['intake.RectificationOut']
type State = NonNullable<NonNullable<paths['/api/v1/staff/rectifications']['get']['parameters']['query']>['status']>
type Action = 'reply' | 'returnVisit' | 'close'

const STATES = ['open', 'replied', 'closed'] as const satisfies readonly State[]
const STATE_CHOICES = STATES.map((value) => ({ value, label: t.states[value] }))

const OPERATIONS: Record<Action, Operation> = {
  reply: 'POST /api/v1/staff/rectifications/{id}/reply',
  returnVisit: 'POST /api/v1/staff/rectifications/{id}/return-visit',
  close: 'POST /api/v1/staff/rectifications/{id}/close',
}

function asState(value: string): State | '' {
  return (STATES as readonly string[]).includes(value) ? (value as State) : ''
}

/** The actions the case's state allows, in the order they are taken. */
function actionsFor(row: Row): Action[] {
  if (row.status === 'open') return ['reply']
  if (row.status === 'replied') return row.return_visited_at ? ['close'] : ['returnVisit']
  return []
}

function Deadline({ row }: { row: Row }) {
  const left = row.working_days_left
  let standing: JSX.Element | null = null
  if (row.status === 'closed') standing = <div className="muted">{t.closedAt(formatDateTime(row.closed_at))}</div>
  else if (row.overdue) standing = <div className="rectification-overdue-text">{t.overdue(left === null ? 0 : -left)}</div>
  else if (left !== null) standing = <div className="muted">{left === 0 ? t.dueToday : t.daysLeft(left)}</div>
  return (
    <>
      {formatDate(row.due_date)}
      {standing}
    </>
  )
}

export function RectificationListPage() {
  usePageTitle(t.title)
  const { can, state: auth } = useAuth()
  const [state, setState] = useState<State | ''>('')
  const [notice, setNotice] = useState<string | null>(null)
  const [open, setOpen] = useState<{ action: Action; row: Row } | null>(null)
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const department = auth.status === 'ready' ? auth.me.department : null

  const { data: rows = [], setData: setRows, loading, problem, setProblem, reload: load } = useAnswer(
    () => attempt(() => api.GET('/api/v1/staff/rectifications', { params: { query: state ? { status: state } : {} } })),
    [state]
  )

  function start(action: Action, row: Row) {
    setNotice(null)
    setProblem(null)
    setText('')
    if (action === 'close') void run(action, row)
    else setOpen({ action, row })
  }

  async function run(action: Action, row: Row) {
    if (busy) return
    const label = action === 'reply' ? t.replyLabel : t.returnVisitLabel
    if (action !== 'close' && !text.trim()) {
      setProblem(t.textRequired(label))
      return
    }
    setBusy(true)
    const params = { path: { id: row.id } }
    const call = () => {
      switch (action) {
        case 'reply':
          return api.POST('/api/v1/staff/rectifications/{id}/reply', { params, body: { text: text.trim() } })
        case 'returnVisit':
          return api.POST('/api/v1/staff/rectifications/{id}/return-visit', { params, body: { text: text.trim() } })
        case 'close':
          return api.POST('/api/v1/staff/rectifications/{id}/close', { params })
      }
    }
    const { data, problem } = await attempt<Answer>(call)
    setBusy(false)
    if (!data) {
      setProblem(problem ?? null)
      return
    }
    setProblem(null)
    setOpen((current) => (current?.row.id === row.id && current.action === action ? null : current))
    setText('')
    setNotice(t.done[action])
    // The answer is the case as it now is; the rating and the item stay as listed. A closed case
    // has no deadline left to count.
    setRows((current = []) =>
      current
        .map((r) =>
          r.id === data.id
            ? { ...r, ...data, ...(data.status === 'closed' ? { working_days_left: null, overdue: false } : {}) }
            : r
        )
        .filter((r) => !state || r.status === state)
    )
  }

  const overdue = rows.filter((r) => r.overdue).length
  const columns: PrimaryTableCol<Row>[] = [
    { colKey: 'item_name', title: t.columns.item },
    {
      colKey: 'score',
      title: t.columns.rating,
      cell: ({ row }) => (
        <div className="rectification-comment">
          <strong>{t.rating(row.score, row.score_label)}</strong>
          {row.tags.length ? <div>{row.tags.join(zh.app.listSeparator)}</div> : null}
          <div className="muted">{row.comment || t.noComment}</div>
        </div>
      ),
    },
    { colKey: 'application_id', title: t.columns.application },
    { colKey: 'opened_at', title: t.columns.openedAt, cell: ({ row }) => formatDateTime(row.opened_at) },
    { colKey: 'due_date', title: t.columns.deadline, cell: ({ row }) => <Deadline row={row} /> },
    {
      colKey: 'status',
      title: t.columns.state,
      cell: ({ row }) => (
        <>
          <span>{t.states[row.status] ?? row.status}</span>
          {row.reply ? <div className="muted rectification-comment">{`${t.replied}：${row.reply}`}</div> : null}
          {row.return_visit ? <div className="muted rectification-comment">{`${t.visited}：${row.return_visit}`}</div> : null}
        </>
      ),
    },
    {
      colKey: 'actions',
      title: t.columns.actions,
      cell: ({ row }) => (
        <Space size="small" breakLine>
          {actionsFor(row)
            .filter((action) => can(OPERATIONS[action]))
            .map((action) => (
              <Button
                key={action}
                size="small"
                theme={action === 'close' ? 'primary' : 'default'}
                variant={action === 'close' ? 'base' : 'outline'}
                loading={busy && action === 'close'}
                aria-label={t.actionFor(t[action], row.item_name, row.application_id)}
                onClick={() => start(action, row)}
              >
                {t[action]}
              </Button>
            ))}
        </Space>
      ),
    },
  ]

  return (
    <section aria-labelledby="rectification-title">
      <PageHead id="rectification-title" title={t.title} />
      <ProblemAlert problem={open ? null : problem} />
      {notice ? <p role="status">{notice}</p> : null}
      <Card
        className="panel"
        title={<h2 className="section-title">{department ? t.listTitle : t.allDepartments}</h2>}
      >
        <FilterBar
          onSubmit={() => void load()}
          aside={overdue ? <p className="rectification-overdue-text">{t.overdueCount(overdue)}</p> : null}
        >
          <SelectField
            label={t.stateFilter}
            name="status"
            value={state}
            onChange={(value) => setState(asState(value))}
            choices={STATE_CHOICES}
            placeholder={t.allStates}
          />
        </FilterBar>
        <Table<Row>
          rowKey="id"
          data={rows}
          columns={columns}
          loading={loading}
          empty={t.empty}
          tableLayout="auto"
          rowClassName={({ row }) => (row.overdue ? 'rectification-overdue' : '')}
        />
      </Card>
      <ActionDialog
        title={open ? t.dialogTitle(t[open.action], open.row.item_name) : ''}
        open={open !== null}
        onClose={() => setOpen(null)}
      >
        {open ? (
          <Form labelAlign="top" colon={false} onSubmit={() => void run(open.action, open.row)}>
            <TextAreaField
              label={open.action === 'reply' ? t.replyLabel : t.returnVisitLabel}
              hint={open.action === 'reply' ? t.replyHint : t.returnVisitHint}
              name="text"
              value={text}
              onChange={setText}
              required
              maxLength={2000}
            />
            <ProblemAlert problem={problem} />
            <DialogButtons confirm={t.confirm(t[open.action])} busy={busy} onCancel={() => setOpen(null)} />
          </Form>
        ) : null}
      </ActionDialog>
    </section>
  )
}
