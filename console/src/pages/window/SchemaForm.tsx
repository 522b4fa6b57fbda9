// Renders an item's form_schema (the JSON Schema subset the catalogue allows): string with
// pattern/maxLength, format date, integer/number, boolean, enum, array of enum. A field marked
// `x-prefill` is filled from government data when the application is filed: shown as such, not asked.
import { CheckboxField, DateField, MultiChoiceField, ReadOnlyField, SelectField, TextField } from '../../components/fields'
import { zh } from '../../i18n/zh'

export type FieldSchema = {
  type?: string
  title?: string
  description?: string
  enum?: unknown[]
  format?: string
  pattern?: string
  maxLength?: number
  minimum?: number
  maximum?: number
  items?: { type?: string; enum?: unknown[] }
  'x-prefill'?: string
}

export type FormSchema = { properties?: Record<string, FieldSchema>; required?: string[] }

export type FormValues = Record<string, string | boolean | string[]>

export function asFormSchema(schema: unknown): FormSchema | null {
  if (!schema || typeof schema !== 'object') return null
  const candidate = schema as FormSchema
  if (!candidate.properties || typeof candidate.properties !== 'object') return null
  return candidate
}

function fields(schema: FormSchema): [string, FieldSchema][] {
  return Object.entries(schema.properties ?? {})
}

function label(name: string, field: FieldSchema): string {
  return field.title || name
}

/** The clerk's entries checked against the schema: one message per field at most. */
export function validateForm(schema: FormSchema, values: FormValues): Record<string, string> {
  const required = new Set(schema.required ?? [])
  const errors: Record<string, string> = {}
  for (const [name, field] of fields(schema)) {
    if (field['x-prefill']) continue
    const title = label(name, field)
    const value = values[name]
    const empty = value === undefined || value === '' || (Array.isArray(value) && value.length === 0)
    if (empty) {
      if (required.has(name) && field.type !== 'boolean') errors[name] = zh.newApp.fieldRequired(title)
      continue
    }
    if (typeof value !== 'string') continue
    if (field.type === 'integer' && !/^-?\d+$/.test(value.trim())) errors[name] = zh.newApp.fieldInteger(title)
    else if (field.type === 'number' && Number.isNaN(Number(value))) errors[name] = zh.newApp.fieldNumber(title)
    else if (field.type === 'string') {
      if (field.maxLength !== undefined && [...value].length > field.maxLength) {
        errors[name] = zh.newApp.fieldTooLong(title, field.maxLength)
      } else if (field.pattern) {
        try {
          if (!new RegExp(field.pattern, 'u').test(value)) errors[name] = zh.newApp.fieldPattern(title)
        } catch {
          // a pattern the browser cannot read is left to the server
        }
      }
    }
  }
  return errors
}

/** The form as the API takes it: typed values, empty optional fields and prefilled ones left out. */
export function formPayload(schema: FormSchema, values: FormValues): Record<string, unknown> {
  const payload: Record<string, unknown> = {}
  for (const [name, field] of fields(schema)) {
    if (field['x-prefill']) continue
    const value = values[name]
    if (field.type === 'boolean') {
      payload[name] = Boolean(value)
      continue
    }
    if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) continue
    if (field.type === 'integer' && typeof value === 'string') payload[name] = parseInt(value, 10)
    else if (field.type === 'number' && typeof value === 'string') payload[name] = Number(value)
    else payload[name] = value
  }
  return payload
}

export function SchemaForm({
  schema,
  values,
  errors,
  onChange,
}: {
  schema: FormSchema
  values: FormValues
  errors: Record<string, string>
  onChange: (name: string, value: string | boolean | string[]) => void
}) {
  const required = new Set(schema.required ?? [])
  return (
    <>
      {fields(schema).map(([name, field]) => {
        const title = label(name, field)
        const common = {
          label: title,
          name,
          required: required.has(name),
          error: errors[name],
          hint: field.description,
        }
        if (field['x-prefill']) {
          return (
            <ReadOnlyField key={name} label={title}>
              <span className="prefilled">{zh.newApp.prefilled}</span>
              <span className="muted"> {zh.newApp.prefilledHint}</span>
            </ReadOnlyField>
          )
        }
        if (field.type === 'boolean') {
          return (
            <CheckboxField key={name} {...common} value={Boolean(values[name])} onChange={(v) => onChange(name, v)} />
          )
        }
        if (field.type === 'array' && field.items?.enum) {
          const choices = field.items.enum.map((v) => ({ value: String(v), label: String(v) }))
          const current = values[name]
          return (
            <MultiChoiceField
              key={name} {...common}
              choices={choices}
              value={Array.isArray(current) ? current : []}
              onChange={(v) => onChange(name, v)}
            />
          )
        }
        const text = typeof values[name] === 'string' ? (values[name] as string) : ''
        if (field.enum) {
          const choices = field.enum.map((v) => ({ value: String(v), label: String(v) }))
          return (
            <SelectField
              key={name} {...common}
              choices={choices}
              placeholder={zh.newApp.pleaseChoose}
              value={text}
              onChange={(v) => onChange(name, v)}
            />
          )
        }
        if (field.format === 'date') {
          return <DateField key={name} {...common} value={text} onChange={(v) => onChange(name, v)} />
        }
        return (
          <TextField
            key={name} {...common}
            type={field.type === 'integer' || field.type === 'number' ? 'number' : 'text'}
            maxLength={field.maxLength}
            value={text}
            onChange={(v) => onChange(name, v)}
          />
        )
      })}
    </>
  )
}
