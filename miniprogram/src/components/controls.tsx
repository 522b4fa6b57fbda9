/**
 * The controls every screen uses: buttons, links, labelled fields, switches, pickers, pictures.
 *
 * Why not Taro's components directly: in the H5 build they are custom elements
 * (taro-button-core, taro-input-core, ...) that a keyboard cannot reach and that keep the label's
 * `for` and the aria-label on their own wrapper, so the real <input> inside has no accessible name
 * and no button is focusable. There, these controls render the native HTML elements, labelled
 * directly. In the WeChat mini-program they render Taro's components, which WeChat's own
 * accessibility reads through `aria-*` attributes. `IN_H5` is a build-time constant: each build
 * keeps only its own branch.
 */
import { Button, Image, Input, Label, Picker, Switch, Text, Textarea, View } from '@tarojs/components'
import type { KeyboardEvent, ReactNode } from 'react'
import { IN_H5 } from '../lib/platform'
import { Cell } from './nut'

type ActionKind = 'primary' | 'plain' | 'danger'

/** A button: `kind` is its weight; `pressed` makes it a toggle (aria-pressed). */
export function Action({
  kind = 'plain',
  mini = false,
  disabled = false,
  pressed,
  onClick,
  children
}: {
  kind?: ActionKind
  mini?: boolean
  disabled?: boolean
  pressed?: boolean
  onClick: () => void
  children: ReactNode
}) {
  const className = `btn btn-${kind}${mini ? ' btn-mini' : ''}`
  if (IN_H5) {
    return (
      <button type='button' className={className} disabled={disabled} aria-pressed={pressed} onClick={onClick}>
        {children}
      </button>
    )
  }
  return (
    <Button
      className={className}
      size={mini ? 'mini' : 'default'}
      disabled={disabled}
      ariaLabel={pressed === undefined ? undefined : `${String(children)}${pressed ? '（已选）' : ''}`}
      onClick={onClick}
    >
      {children}
    </Button>
  )
}

function onEnter(open: () => void) {
  return (e: KeyboardEvent) => {
    if (e.key === 'Enter') {
      e.preventDefault()
      open()
    }
  }
}

/** A NutUI cell that opens another screen (我的 menu, 首页 shortcuts). */
export function CellLink({
  title,
  description,
  className,
  onOpen
}: {
  title: string
  description?: string
  className?: string
  onOpen: () => void
}) {
  return (
    <Link className={className} onOpen={onOpen}>
      <Cell title={title} description={description} />
    </Link>
  )
}

/** A block that opens another screen (a list row, a grid cell): focusable, Enter opens it. */
export function Link({ className, onOpen, children }: { className?: string; onOpen: () => void; children: ReactNode }) {
  if (IN_H5) {
    return (
      <div className={className} role='link' tabIndex={0} onClick={onOpen} onKeyDown={onEnter(onOpen)}>
        {children}
      </div>
    )
  }
  return (
    <View className={className} ariaRole='link' onClick={onOpen}>
      {children}
    </View>
  )
}

interface LabelProps {
  id: string
  label: string
  /** After the label, in lighter type (必填/选填). */
  note?: string
}

function FieldLabel({ id, label, note }: LabelProps) {
  const content = (
    <>
      {label}
      {note ? <Text className='hint-inline'>{note}</Text> : null}
    </>
  )
  if (IN_H5) {
    return (
      <label className='label' id={`${id}-label`} htmlFor={id}>
        {content}
      </label>
    )
  }
  return (
    <Label className='label' for={id}>
      {content}
    </Label>
  )
}

function Hint({ id, text }: { id: string; text?: string }) {
  return text ? (
    <Text className='hint' id={`${id}-hint`}>
      {text}
    </Text>
  ) : null
}

/** What a text field holds: `number` digits only (codes, counts), `digit` a decimal amount. */
type TextKind = 'text' | 'search' | 'number' | 'digit' | 'idcard'

const H5_KEYBOARD: Record<TextKind, 'text' | 'search' | 'numeric' | 'decimal'> = {
  text: 'text',
  search: 'search',
  number: 'numeric',
  digit: 'decimal',
  idcard: 'text'
}

function keepAllowed(kind: TextKind, value: string): string {
  if (kind === 'number') return value.replace(/\D/g, '')
  if (kind === 'digit') return value.replace(/[^\d.]/g, '')
  return value
}

/** A labelled one-line field. `search` is a search box (Enter runs `onConfirm`). */
export function TextField({
  id,
  label,
  note,
  hint,
  kind = 'text',
  value,
  placeholder,
  maxlength = 140,
  focus = false,
  onChange,
  onConfirm
}: LabelProps & {
  hint?: string
  kind?: TextKind
  value: string
  placeholder?: string
  maxlength?: number
  focus?: boolean
  onChange: (value: string) => void
  onConfirm?: () => void
}) {
  return (
    <View className='field'>
      <FieldLabel id={id} label={label} note={note} />
      <Hint id={id} text={hint} />
      {IN_H5 ? (
        <input
          id={id}
          className='input'
          type={kind === 'search' ? 'search' : 'text'}
          inputMode={H5_KEYBOARD[kind]}
          enterKeyHint={kind === 'search' ? 'search' : undefined}
          autoFocus={focus}
          maxLength={maxlength}
          placeholder={placeholder}
          aria-describedby={hint ? `${id}-hint` : undefined}
          value={value}
          onChange={(e) => onChange(keepAllowed(kind, e.target.value))}
          onKeyDown={onConfirm ? onEnter(onConfirm) : undefined}
        />
      ) : (
        <Input
          id={id}
          className='input'
          type={kind === 'search' ? 'text' : kind}
          confirmType={kind === 'search' ? 'search' : 'done'}
          focus={focus}
          maxlength={maxlength}
          placeholder={placeholder}
          ariaLabel={label}
          value={value}
          onInput={(e) => onChange(e.detail.value)}
          onConfirm={onConfirm}
        />
      )}
    </View>
  )
}

/** A labelled text area (a comment, a description). */
export function TextAreaField({
  id,
  label,
  note,
  value,
  maxlength = 500,
  onChange
}: LabelProps & { value: string; maxlength?: number; onChange: (value: string) => void }) {
  return (
    <View className='field'>
      <FieldLabel id={id} label={label} note={note} />
      {IN_H5 ? (
        <textarea
          id={id}
          className='input textarea'
          maxLength={maxlength}
          value={value}
          onChange={(e) => onChange(e.target.value)}
        />
      ) : (
        <Textarea
          id={id}
          className='input'
          maxlength={maxlength}
          ariaLabel={label}
          value={value}
          onInput={(e) => onChange(e.detail.value)}
        />
      )}
    </View>
  )
}

/** A labelled on/off switch on one row, with an optional line explaining it. */
export function SwitchField({
  id,
  label,
  note,
  hint,
  checked,
  onChange
}: LabelProps & { hint?: string; checked: boolean; onChange: (checked: boolean) => void }) {
  return (
    <View className='row'>
      <View className='row-main'>
        <FieldLabel id={id} label={label} note={note} />
        <Hint id={id} text={hint} />
      </View>
      {IN_H5 ? (
        <input
          id={id}
          className='switch'
          type='checkbox'
          role='switch'
          aria-describedby={hint ? `${id}-hint` : undefined}
          checked={checked}
          onChange={(e) => onChange(e.target.checked)}
        />
      ) : (
        <Switch id={id} checked={checked} ariaLabel={label} onChange={(e) => onChange(e.detail.value)} />
      )}
    </View>
  )
}

/**
 * A labelled choice from a list (`options`, the chosen `index`, -1 for none yet) or a date
 * (`date`): a button showing the current choice that opens the platform's picker. Its name is
 * the label followed by the choice, so a screen reader hears both.
 */
export function PickerField(
  props: LabelProps & { shown: string; row?: boolean } & (
      | { options: string[]; index: number; onPick: (index: number) => void }
      | { date: string; onPickDate: (date: string) => void }
    )
) {
  const { id, label, note, shown, row = false } = props
  const trigger = IN_H5 ? (
    <button type='button' id={id} className='input picker' aria-labelledby={`${id}-label ${id}`}>
      {shown}
    </button>
  ) : (
    <View className='input' ariaRole='button' ariaLabel={`${label}：${shown}`}>
      {shown}
    </View>
  )
  const picker =
    'options' in props ? (
      <Picker
        mode='selector'
        range={props.options}
        value={Math.max(props.index, 0)}
        onChange={(e) => props.onPick(Number(e.detail.value))}
      >
        {trigger}
      </Picker>
    ) : (
      <Picker mode='date' value={props.date} onChange={(e) => props.onPickDate(e.detail.value)}>
        {trigger}
      </Picker>
    )
  return (
    <View className={row ? 'row' : 'field'}>
      <FieldLabel id={id} label={label} note={note} />
      {picker}
    </View>
  )
}

/** An image that means something (a QR code): `alt` is what it shows. */
export function Picture({ className, src, alt }: { className: string; src: string; alt: string }) {
  if (IN_H5) {
    return <img className={className} src={src} alt={alt} />
  }
  return <Image className={className} src={src} mode='aspectFit' ariaLabel={alt} />
}
