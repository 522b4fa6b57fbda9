/**
 * A form drawn from an item's JSON Schema (catalog form_schema): the simple field types the
 * catalogue uses — text (with pattern and length), date, integer/number, yes/no, one of a
 * list (enum) and several of a list (array of enum). Fields the government pre-fills
 * (x-prefill) are not asked for. Every input has a label.
 */
import { Checkbox, CheckboxGroup, Label, Text, View } from '@tarojs/components'
import { zh } from '../i18n/zh'
import { PickerField, SwitchField, TextField } from './controls'

export interface FieldSchema {
  type?: string
  title?: string
  description?: string
  enum?: Array<string | number>
  format?: string
  pattern?: string
  maxLength?: number
  minLength?: number
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  items?: { enum?: string[] }
  'x-prefill'?: string
}

export interface FormSchema {
  title?: string
  properties?: Record<string, FieldSchema>
  required?: string[]
}

export type FieldValue = string | number | boolean | string[]
export type FormValues = Record<string, FieldValue>

/** Read a catalogue form_schema (typed as a free object in the API) as a FormSchema. */
export function asFormSchema(value: Record<string, unknown> | null | undefined): FormSchema | null {
  if (!value || typeof value !== 'object' || typeof value.properties !== 'object') return null
  return value as FormSchema
}

/**
 * The fields to ask for, required ones first in the order `required` lists them. The order of
 * `properties` cannot be trusted: the catalogue keeps schemas as PostgreSQL jsonb, which
 * reorders object keys (shorter first).
 */
export function askedFields(schema: FormSchema): Array<[string, FieldSchema]> {
  const required = schema.required ?? []
  const rank = (name: string) => (required.includes(name) ? required.indexOf(name) : required.length)
  return Object.entries(schema.properties ?? {})
    .filter(([, f]) => !f['x-prefill'])
    .sort(([a], [b]) => rank(a) - rank(b))
}

export function prefilledFields(schema: FormSchema): Array<[string, FieldSchema]> {
  return Object.entries(schema.properties ?? {}).filter(([, f]) => Boolean(f['x-prefill']))
}

/** The first problem with the values, as a sentence, or null. */
export function validate(schema: FormSchema, values: FormValues): string | null {
  const required = new Set(schema.required ?? [])
  for (const [name, field] of askedFields(schema)) {
    const title = field.title ?? name
    const value = values[name]
    const empty =
      value === undefined || value === '' || (Array.isArray(value) && value.length === 0)
    if (empty) {
      if (required.has(name) && field.type !== 'boolean') return zh.apply.missing(title)
      continue
    }
    if (field.type === 'string' && typeof value === 'string') {
      if (field.minLength !== undefined && value.length < field.minLength) return zh.apply.invalid(title)
      if (field.maxLength !== undefined && value.length > field.maxLength) return zh.apply.invalid(title)
      if (field.pattern && !new RegExp(field.pattern).test(value)) return zh.apply.invalid(title)
    }
    if ((field.type === 'integer' || field.type === 'number') && typeof value === 'number') {
      if (Number.isNaN(value)) return zh.apply.invalid(title)
      if (field.type === 'integer' && !Number.isInteger(value)) return zh.apply.invalid(title)
      if (field.minimum !== undefined && value < field.minimum) return zh.apply.invalid(title)
      if (field.maximum !== undefined && value > field.maximum) return zh.apply.invalid(title)
      if (field.exclusiveMinimum !== undefined && value <= field.exclusiveMinimum) return zh.apply.invalid(title)
    }
  }
  return null
}

/** The values to send: empty optional fields left out, booleans never left undefined. */
export function cleaned(schema: FormSchema, values: FormValues): FormValues {
  const out: FormValues = {}
  for (const [name, field] of askedFields(schema)) {
    const value = values[name]
    if (field.type === 'boolean') out[name] = value === true
    else if (value !== undefined && value !== '' && !(Array.isArray(value) && value.length === 0)) out[name] = value
  }
  return out
}

interface FieldProps {
  name: string
  field: FieldSchema
  required: boolean
  value: FieldValue | undefined
  onChange: (value: FieldValue) => void
}

function FieldInput({ name, field, required, value, onChange }: FieldProps) {
  const id = `field-${name}`
  const title = field.title ?? name
  const note = required ? `（${zh.common.required}）` : `（${zh.common.optional}）`

  if (field.type === 'array' && field.items?.enum) {
    const chosen = Array.isArray(value) ? value : []
    return (
      <View className='field' role='group' ariaRole='group' ariaLabel={title}>
        <Text className='label'>
          {title}
          <Text className='hint-inline'>{note}</Text>
        </Text>
        <Text className='hint'>{zh.apply.selectSome}</Text>
        <CheckboxGroup id={id} onChange={(e) => onChange(e.detail.value as string[])}>
          {field.items.enum.map((option) => (
            <Label key={option} className='row' for={`${id}-${option}`}>
              <Checkbox id={`${id}-${option}`} value={option} checked={chosen.includes(option)} ariaLabel={option} />
              <Text>{option}</Text>
            </Label>
          ))}
        </CheckboxGroup>
      </View>
    )
  }

  if (field.enum) {
    const options = field.enum.map(String)
    const index = value === undefined ? -1 : options.indexOf(String(value))
    return (
      <PickerField
        id={id}
        label={title}
        note={note}
        options={options}
        index={index}
        shown={index >= 0 ? options[index] : zh.apply.choose}
        onPick={(picked) => onChange(field.enum![picked])}
      />
    )
  }

  if (field.type === 'string' && field.format === 'date') {
    const date = typeof value === 'string' ? value : ''
    return (
      <PickerField id={id} label={title} note={note} date={date} shown={date || zh.apply.choose} onPickDate={onChange} />
    )
  }

  if (field.type === 'boolean') {
    return <SwitchField id={id} label={title} note={note} checked={value === true} onChange={onChange} />
  }

  if (field.type === 'integer' || field.type === 'number') {
    return (
      <TextField
        id={id}
        label={title}
        note={note}
        kind={field.type === 'integer' ? 'number' : 'digit'}
        value={value === undefined ? '' : String(value)}
        onChange={(text) => onChange(text === '' ? '' : Number(text))}
      />
    )
  }

  return (
    <TextField
      id={id}
      label={title}
      note={note}
      hint={field.description}
      maxlength={field.maxLength ?? 140}
      value={typeof value === 'string' ? value : ''}
      onChange={onChange}
    />
  )
}

export function SchemaForm({
  schema,
  values,
  onChange
}: {
  schema: FormSchema
  values: FormValues
  onChange: (values: FormValues) => void
}) {
  const required = new Set(schema.required ?? [])
  const prefilled = prefilledFields(schema)
  return (
    <View>
      {askedFields(schema).map(([name, field]) => (
        <FieldInput
          key={name}
          name={name}
          field={field}
          required={required.has(name)}
          value={values[name]}
          onChange={(value) => onChange({ ...values, [name]: value })}
        />
      ))}
      {prefilled.length > 0 ? (
        <View className='field'>
          {prefilled.map(([name, field]) => (
            <Text key={name} className='hint'>
              {field.title ?? name}：{zh.apply.prefilled}
            </Text>
          ))}
        </View>
      ) : null}
    </View>
  )
}
