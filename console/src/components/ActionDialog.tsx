// A modal dialog for an action's form (a reviewer's 通过, 不予许可, …): the native <dialog>, so
// the browser keeps focus inside it, Esc closes it and focus goes back to the button that opened it.
import { useEffect, useId, useRef } from 'react'
import type { ReactNode } from 'react'
import { Button, Space } from 'tdesign-react'
import { zh } from '../i18n/zh'

export function ActionDialog({
  title,
  open,
  onClose,
  children,
}: {
  title: string
  open: boolean
  onClose: () => void
  children: ReactNode
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()
  useEffect(() => {
    const dialog = ref.current
    if (!dialog) return
    if (open && !dialog.open) dialog.showModal()
    else if (!open && dialog.open) dialog.close()
  }, [open])
  return (
    <dialog ref={ref} className="action-dialog" aria-labelledby={titleId} onClose={onClose}>
      <h2 id={titleId} className="section-title">
        {title}
      </h2>
      {open ? children : null}
    </dialog>
  )
}

/**
 * A dialog's two buttons: the action (its name says what it does) and 取消. Without `onConfirm`
 * the action submits the dialog's form, so Enter in a field does the same as the button.
 */
export function DialogButtons({
  confirm,
  onConfirm,
  onCancel,
  busy = false,
  theme = 'primary',
}: {
  confirm: string
  onConfirm?: () => void
  onCancel: () => void
  busy?: boolean
  theme?: 'primary' | 'danger'
}) {
  return (
    <Space>
      <Button type={onConfirm ? 'button' : 'submit'} theme={theme} loading={busy} onClick={onConfirm}>
        {confirm}
      </Button>
      <Button theme="default" variant="outline" onClick={onCancel}>
        {zh.app.cancel}
      </Button>
    </Space>
  )
}
