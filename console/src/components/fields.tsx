// Labelled form controls: each renders a TDesign FormItem whose visible <label> is tied (for/id)
// to the native control, so screen readers and Playwright's getByLabel find it by its Chinese
// label. TDesign's own inputs do not pass an id to their inner <input>; the text field sets it
// through the component's ref, the others are native controls with TDesign's classes. Required
// fields say so with aria-required (not `required`, whose browser check would stop the submit
// before the console's own messages, in Chinese, are shown).
import { useId, useLayoutEffect, useRef } from 'react'
import type { ReactNode } from 'react'
import { Button, Form, Input } from 'tdesign-react'
import type { InputRef } from 'tdesign-react'
import { zh } from '../i18n/zh'

const { FormItem } = Form

type Common = {
  label: string
  name: string
  required?: boolean
  error?: string | null
  hint?: ReactNode
  disabled?: boolean
}

function Help({ id, error, hint }: { id: string; error?: string | null; hint?: ReactNode }) {
  return (
    <>
      {hint ? (
        <div id={`${id}-hint`} className="field-hint">
          {hint}
        </div>
      ) : null}
      {error ? (
        <div id={`${id}-error`} className="field-error" role="alert">
          {error}
        </div>
      ) : null}
    </>
  )
}

/**
 * A required field's asterisk is drawn on the label's box, outside the <label> element: TDesign's
 * own mark is generated content of the <label>, which browsers count in the field's accessible
 * name ("*用户名"), and text inside the <label> would be part of its text. Either way the field
 * would no longer be found by its label alone.
 */
function requiredClass(required?: boolean): string | undefined {
  return required ? 'field-required' : undefined
}

function describedBy(id: string, error?: string | null, hint?: ReactNode): string | undefined {
  const ids = [hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean)
  return ids.length ? ids.join(' ') : undefined
}

/** What a native control takes from its field: its id and the ARIA state of the field. */
type ControlProps = {
  id: string
  'aria-required': true | undefined
  'aria-invalid': true | undefined
  'aria-describedby': string | undefined
}

/** The label, the control (drawn by `children` with its id and ARIA state), hint and error. */
function Labelled({
  label,
  required,
  error,
  hint,
  children,
}: Pick<Common, 'label' | 'required' | 'error' | 'hint'> & {
  children: (control: ControlProps) => ReactNode
}) {
  const id = useId()
  const control: ControlProps = {
    id,
    'aria-required': required || undefined,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': describedBy(id, error, hint),
  }
  return (
    <FormItem label={label} for={id} requiredMark={false} className={requiredClass(required)}>
      <div className="field-control">
        {children(control)}
        <Help id={id} error={error} hint={hint} />
      </div>
    </FormItem>
  )
}

type TextProps = {
  name: string
  value: string
  onChange: (value: string) => void
  type?: 'text' | 'password' | 'number'
  maxLength?: number
  autoComplete?: string
  disabled?: boolean
  error?: string | null
}

/** TDesign's Input, given its field's id and ARIA state through its ref (it passes no props on). */
function TdesignInput({ control, ...props }: TextProps & { control: ControlProps }) {
  const ref = useRef<InputRef>(null)
  useLayoutEffect(() => {
    const element = ref.current?.inputElement
    if (!element) return
    element.id = control.id
    for (const attribute of ['aria-required', 'aria-invalid', 'aria-describedby'] as const) {
      const value = control[attribute]
      if (value === undefined) element.removeAttribute(attribute)
      else element.setAttribute(attribute, String(value))
    }
    if (props.autoComplete) element.setAttribute('autocomplete', props.autoComplete)
  })
  return (
    <Input
      ref={ref}
      name={props.name}
      type={props.type ?? 'text'}
      value={props.value}
      disabled={props.disabled}
      maxlength={props.maxLength}
      status={props.error ? 'error' : 'default'}
      onChange={(next) => props.onChange(String(next ?? ''))}
    />
  )
}

export function TextField({
  label,
  required,
  hint,
  ...props
}: Common & Omit<TextProps, 'name' | 'error' | 'disabled'>) {
  return (
    <Labelled label={label} required={required} error={props.error} hint={hint}>
      {(control) => <TdesignInput control={control} {...props} />}
    </Labelled>
  )
}

export function TextAreaField({
  label,
  name,
  value,
  onChange,
  required,
  error,
  hint,
  disabled,
  maxLength,
}: Common & { value: string; onChange: (value: string) => void; maxLength?: number }) {
  return (
    <Labelled label={label} required={required} error={error} hint={hint}>
      {(control) => (
        <div className="t-textarea">
          <textarea
            {...control}
            name={name}
            className="t-textarea__inner"
            rows={3}
            value={value}
            disabled={disabled}
            maxLength={maxLength}
            onChange={(event) => onChange(event.target.value)}
          />
        </div>
      )}
    </Labelled>
  )
}

export type Choice = { value: string; label: string }

export function SelectField({
  label,
  name,
  value,
  onChange,
  choices,
  placeholder,
  required,
  error,
  hint,
  disabled,
}: Common & {
  value: string
  onChange: (value: string) => void
  choices: readonly Choice[]
  placeholder?: string
}) {
  return (
    <Labelled label={label} required={required} error={error} hint={hint}>
      {(control) => (
        <select
          {...control}
          name={name}
          className="native-select"
          value={value}
          disabled={disabled}
          onChange={(event) => onChange(event.target.value)}
        >
          {placeholder !== undefined ? <option value="">{placeholder}</option> : null}
          {choices.map((choice) => (
            <option key={choice.value} value={choice.value}>
              {choice.label}
            </option>
          ))}
        </select>
      )}
    </Labelled>
  )
}

export function DateField({
  label,
  name,
  value,
  onChange,
  required,
  error,
  hint,
  disabled,
}: Common & { value: string; onChange: (value: string) => void }) {
  return (
    <Labelled label={label} required={required} error={error} hint={hint}>
      {(control) => (
        <div className="t-input">
          <input
            {...control}
            name={name}
            type="date"
            className="t-input__inner"
            value={value}
            disabled={disabled}
            onChange={(event) => onChange(event.target.value)}
          />
        </div>
      )}
    </Labelled>
  )
}

/**
 * A native checkbox inside its <label>, named by the label's text. TDesign's Checkbox hides its
 * native input under a drawn box and takes it out of the tab order (tabindex -1), so it is neither
 * reached by Tab in a form nor checked by Playwright's check().
 */
function NativeCheckbox({
  name,
  checked,
  disabled,
  onChange,
  describedBy: described,
  children,
}: {
  name: string
  checked: boolean
  disabled?: boolean
  onChange: (checked: boolean) => void
  describedBy?: string
  children: ReactNode
}) {
  return (
    <label className="native-checkbox">
      <input
        type="checkbox"
        name={name}
        checked={checked}
        disabled={disabled}
        aria-describedby={described}
        onChange={(event) => onChange(event.target.checked)}
      />
      <span>{children}</span>
    </label>
  )
}

/** A yes/no field. */
export function CheckboxField({
  label,
  name,
  value,
  onChange,
  error,
  hint,
  disabled,
}: Common & { value: boolean; onChange: (value: boolean) => void }) {
  const id = useId()
  return (
    <FormItem>
      <div className="field-control" id={id}>
        <NativeCheckbox
          name={name}
          checked={value}
          disabled={disabled}
          onChange={onChange}
          describedBy={describedBy(id, error, hint)}
        >
          {label}
        </NativeCheckbox>
        <Help id={id} error={error} hint={hint} />
      </div>
    </FormItem>
  )
}

/** Several choices of a list: a fieldset whose legend names the group, one checkbox each. */
export function MultiChoiceField({
  label,
  name,
  value,
  onChange,
  choices,
  required,
  error,
  hint,
  disabled,
}: Common & { value: string[]; onChange: (value: string[]) => void; choices: readonly Choice[] }) {
  const id = useId()
  return (
    <FormItem>
      <fieldset className="field-group" aria-describedby={describedBy(id, error, hint)}>
        <legend>
          {label}
          {required ? <span aria-hidden="true"> *</span> : null}
        </legend>
        {choices.map((choice) => (
          <NativeCheckbox
            key={choice.value}
            name={name}
            checked={value.includes(choice.value)}
            disabled={disabled}
            onChange={(checked) =>
              onChange(checked ? [...value, choice.value] : value.filter((v) => v !== choice.value))
            }
          >
            {choice.label}
          </NativeCheckbox>
        ))}
        <Help id={id} error={error} hint={hint} />
      </fieldset>
    </FormItem>
  )
}

/** A read-only value shown in a form (e.g. a field the government fills). */
export function ReadOnlyField({ label, children }: { label: string; children: ReactNode }) {
  const id = useId()
  return (
    <FormItem label={label} for={id}>
      <output id={id} className="field-readonly">
        {children}
      </output>
    </FormItem>
  )
}

/** A file chosen from the desk's scanner folder: a native file input, named by its label. */
export function FileField({
  label,
  name,
  onChange,
  accept,
  error,
  hint,
  disabled,
}: Common & { onChange: (file: File | null) => void; accept?: string }) {
  return (
    <Labelled label={label} error={error} hint={hint}>
      {(control) => (
        <input
          {...control}
          type="file"
          name={name}
          accept={accept}
          disabled={disabled}
          onChange={(event) => onChange(event.currentTarget.files?.[0] ?? null)}
        />
      )}
    </Labelled>
  )
}

/**
 * A list's filters in a row, applied (and the list read again) by 刷新 or Enter; `aside` stands
 * beside them (e.g. a count of what needs attention).
 */
export function FilterBar({
  onSubmit,
  aside,
  children,
}: {
  onSubmit: () => void
  aside?: ReactNode
  children: ReactNode
}) {
  return (
    <div className="toolbar">
      <Form layout="inline" colon={false} onSubmit={onSubmit}>
        {children}
        <Button type="submit" theme="default" variant="outline">
          {zh.app.refresh}
        </Button>
      </Form>
      {aside}
    </div>
  )
}
