// The draft editor: a form for the common elements and the 秒批 rules (each rule a named CEL
// expression with the reason given when it is false). The other elements (materials, form schema,
// workflow, …) are carried over unchanged; the catalog checks the whole content on save.
import { useState } from 'react'
import { Button, Form, Space } from 'tdesign-react'
import type { Schemas } from '../../api/client'
import { CheckboxField, SelectField, TextAreaField, TextField } from '../../components/fields'
import { zh } from '../../i18n/zh'

export type ItemContent = Schemas['catalog.ItemContent']
type ItemType = Schemas['catalog.ItemType']

const t = zh.catalog
const ITEM_TYPES = t.editor.itemTypes.map((value) => ({ value, label: value }))

type RuleDraft = { key: number; name: string; expression: string; message: string; needs: string; refer: boolean }

type Draft = {
  catalog_code: string
  implementing_code: string
  name: string
  short_name: string
  item_type: string
  department: string
  region_code: string
  conditions: string
  legal_basis: string
  legal_days: string
  committed_days: string
  keywords: string
  themes: string
  auto_approval: boolean
  rules: RuleDraft[]
}

let nextKey = 1

function list(value: string): string[] {
  return value
    .split(/[、,，;；\n]/)
    .map((part) => part.trim())
    .filter(Boolean)
}

function draftOf(content: ItemContent): Draft {
  return {
    catalog_code: content.catalog_code,
    implementing_code: content.implementing_code,
    name: content.name,
    short_name: content.short_name ?? '',
    item_type: content.item_type,
    department: content.department,
    region_code: content.region_code,
    conditions: content.conditions ?? '',
    legal_basis: content.legal_basis ?? '',
    legal_days: content.legal_days === null || content.legal_days === undefined ? '' : String(content.legal_days),
    committed_days:
      content.committed_days === null || content.committed_days === undefined ? '' : String(content.committed_days),
    keywords: (content.keywords ?? []).join('、'),
    themes: (content.themes ?? []).join('、'),
    auto_approval: content.auto_approval ?? false,
    rules: (content.rules ?? []).map((rule) => ({
      key: nextKey++,
      name: rule.name,
      expression: rule.expression,
      message: rule.message,
      needs: (rule.needs ?? []).join(', '),
      refer: rule.refer ?? false,
    })),
  }
}

function days(value: string): number | null | 'invalid' {
  if (!value.trim()) return null
  const n = Number(value)
  return Number.isInteger(n) && n >= 0 && n <= 365 ? n : 'invalid'
}

function isItemType(value: string): value is ItemType {
  return (t.editor.itemTypes as readonly string[]).includes(value)
}

export function ContentEditor({
  content,
  creating = false,
  busy,
  submitLabel,
  onSave,
  onCancel,
}: {
  content: ItemContent
  creating?: boolean
  busy: boolean
  submitLabel: string
  onSave: (content: ItemContent) => void
  onCancel?: () => void
}) {
  const [draft, setDraft] = useState<Draft>(() => draftOf(content))
  const [errors, setErrors] = useState<Record<string, string>>({})
  const set = <K extends keyof Draft>(key: K) => (value: Draft[K]) => setDraft((d) => ({ ...d, [key]: value }))
  const setRule = (key: number, patch: Partial<RuleDraft>) =>
    setDraft((d) => ({ ...d, rules: d.rules.map((rule) => (rule.key === key ? { ...rule, ...patch } : rule)) }))

  function save() {
    const legal = days(draft.legal_days)
    const committed = days(draft.committed_days)
    const found: Record<string, string> = {}
    if (legal === 'invalid') found.legal_days = t.editor.invalidNumber(t.version.fields.legalDays)
    if (committed === 'invalid') found.committed_days = t.editor.invalidNumber(t.version.fields.committedDays)
    setErrors(found)
    if (legal === 'invalid' || committed === 'invalid') return
    onSave({
      ...content,
      catalog_code: draft.catalog_code.trim(),
      implementing_code: draft.implementing_code.trim(),
      name: draft.name.trim(),
      short_name: draft.short_name.trim() || null,
      item_type: isItemType(draft.item_type) ? draft.item_type : content.item_type,
      department: draft.department.trim(),
      region_code: draft.region_code.trim(),
      conditions: draft.conditions.trim() || null,
      legal_basis: draft.legal_basis.trim() || null,
      legal_days: legal,
      committed_days: committed,
      keywords: list(draft.keywords),
      themes: list(draft.themes),
      auto_approval: draft.auto_approval,
      rules: draft.rules.map((rule) => ({
        name: rule.name.trim(),
        expression: rule.expression.trim(),
        message: rule.message.trim(),
        needs: list(rule.needs),
        refer: rule.refer,
      })),
    })
  }

  const f = t.version.fields
  return (
    <Form labelAlign="top" colon={false} onSubmit={save}>
      {creating ? (
        <>
          <TextField label={f.implementingCode} name="implementing_code" required value={draft.implementing_code} onChange={set('implementing_code')} maxLength={64} />
          <TextField label={f.catalogCode} name="catalog_code" required value={draft.catalog_code} onChange={set('catalog_code')} maxLength={64} />
          <SelectField label={f.itemType} name="item_type" required value={draft.item_type} onChange={set('item_type')} choices={ITEM_TYPES} />
          <TextField label={f.department} name="department" required value={draft.department} onChange={set('department')} maxLength={100} />
          <TextField label={f.region} name="region_code" required value={draft.region_code} onChange={set('region_code')} maxLength={12} />
        </>
      ) : null}
      <TextField label={f.name} name="name" required value={draft.name} onChange={set('name')} maxLength={200} />
      <TextField label={f.shortName} name="short_name" value={draft.short_name} onChange={set('short_name')} maxLength={60} />
      <TextAreaField label={f.conditions} name="conditions" value={draft.conditions} onChange={set('conditions')} maxLength={4000} />
      <TextAreaField label={f.legalBasis} name="legal_basis" value={draft.legal_basis} onChange={set('legal_basis')} maxLength={4000} />
      <TextField label={f.legalDays} name="legal_days" value={draft.legal_days} onChange={set('legal_days')} error={errors.legal_days} maxLength={3} />
      <TextField label={f.committedDays} name="committed_days" value={draft.committed_days} onChange={set('committed_days')} error={errors.committed_days} maxLength={3} />
      <TextField label={f.keywords} name="keywords" value={draft.keywords} onChange={set('keywords')} hint={t.editor.listHint} />
      <TextField label={f.themes} name="themes" value={draft.themes} onChange={set('themes')} hint={t.editor.listHint} />
      <CheckboxField label={f.autoApproval} name="auto_approval" value={draft.auto_approval} onChange={set('auto_approval')} />

      <h3 className="section-title">{t.editor.rules}</h3>
      {draft.rules.map((rule, index) => (
        <fieldset key={rule.key} className="rule-editor">
          <legend>{t.editor.ruleHeading(index + 1)}</legend>
          <TextField label={t.editor.ruleName} name={`rule-${rule.key}-name`} required value={rule.name} onChange={(v) => setRule(rule.key, { name: v })} hint={t.editor.ruleNameHint} maxLength={100} />
          <TextAreaField label={t.editor.ruleExpression} name={`rule-${rule.key}-expression`} required value={rule.expression} onChange={(v) => setRule(rule.key, { expression: v })} hint={t.editor.ruleExpressionHint} maxLength={2000} />
          <TextField label={t.editor.ruleMessage} name={`rule-${rule.key}-message`} required value={rule.message} onChange={(v) => setRule(rule.key, { message: v })} maxLength={200} />
          <TextField label={t.editor.ruleNeeds} name={`rule-${rule.key}-needs`} value={rule.needs} onChange={(v) => setRule(rule.key, { needs: v })} hint={t.editor.ruleNeedsHint} />
          <CheckboxField label={t.editor.ruleRefer} name={`rule-${rule.key}-refer`} value={rule.refer} onChange={(v) => setRule(rule.key, { refer: v })} />
          <Button theme="danger" variant="outline" onClick={() => setDraft((d) => ({ ...d, rules: d.rules.filter((r) => r.key !== rule.key) }))}>
            {t.editor.removeRule(index + 1)}
          </Button>
        </fieldset>
      ))}
      <Space>
        <Button
          theme="default"
          variant="outline"
          onClick={() =>
            setDraft((d) => ({ ...d, rules: [...d.rules, { key: nextKey++, name: '', expression: '', message: '', needs: '', refer: false }] }))
          }
        >
          {t.editor.addRule}
        </Button>
        <Button type="submit" theme="primary" loading={busy}>
          {submitLabel}
        </Button>
        {onCancel ? (
          <Button theme="default" variant="outline" onClick={onCancel}>
            {t.editor.cancel}
          </Button>
        ) : null}
      </Space>
    </Form>
  )
}
