"""Import and export of the item list (实施清单) as JSON or CSV.

A department hands over its list as a spreadsheet export: one row per item, often with headers of
its own and numeric type codes (the Sichuan portal's ``task_type``), often with nothing but names
and codes. A :class:`ColumnMapping` says which column feeds which :class:`ItemContent` field.
Materials come either as a JSON array in a ``materials`` column or as a second CSV with one row
per material, keyed by implementing code.

An import is all or nothing: every row is parsed and validated first (:func:`parse_items`), every
bad row is reported with its row number, column and a Chinese reason, and if there is one, nothing
is written (:class:`ImportRejected`). Only then are the rows applied (:func:`apply_rows`):
unknown codes become new drafts, changed items get a draft (a revision when the newest version is
published), identical items are left alone, so importing the same file twice changes nothing.
Importing never publishes unless asked to publish the rows that are complete.

:func:`export_items` writes the newest version of every item in exactly the shape the importer
reads back with the default mapping.

No HTTP here; functions flush, never commit.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, review, service
from catalog_service.models import ItemVersion
from catalog_service.schemas import ItemContent, ItemType, Material, Status
from wangban.errors import Problem, ValidationFailed, field_errors_from_validation

Format = Literal["csv", "json"]
FileName = Literal["items", "materials"]

MAX_IMPORT_BYTES: Final = 10 * 1024 * 1024
"""Largest file accepted."""

MAX_IMPORT_ROWS: Final = 10_000
"""Most items in one import. Rows are written one by one through the service's rules (about
8 ms each for new items), so this bounds one import's transaction to a minute or two."""

ITEM_FIELDS: Final = tuple(ItemContent.model_fields)
MATERIAL_FIELDS: Final = tuple(Material.model_fields)
MATERIAL_KEY: Final = "implementing_code"
"""The column of the materials CSV naming the item a material belongs to."""

# How a CSV cell becomes a value. Every other field is a plain string.
_LIST_FIELDS: Final = frozenset({"serves", "themes", "keywords", "channels"})
_JSON_FIELDS: Final = frozenset({"fees", "materials", "rules", "form_schema", "workflow"})
_INT_FIELDS: Final = frozenset(
    {
        "legal_days",
        "committed_days",
        "online_depth",
        "visits",
        "originals",
        "copies",
        "supplement_days",
    }
)
_BOOL_FIELDS: Final = frozenset({"auto_approval", "required", "may_be_missing"})
_TRUE: Final = frozenset({"true", "1", "yes", "y", "是"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "否"})
_LIST_SEPARATOR: Final = re.compile(r"[;；]")

_LABELS: Final[dict[str, str]] = {
    "catalog_code": "基本编码",
    "implementing_code": "实施编码",
    "name": "事项名称",
    "item_type": "事项类型",
    "department": "实施部门",
    "region_code": "行政区划代码",
}
_PATTERNS: Final[dict[str, str]] = {
    "region_code": "应为 6 位或 12 位数字的行政区划代码",
    "source": "应为 upload、commitment、waived、shared:<数据集> 或 certificate:<证照类型>",
}
"""Readable reasons for fields whose format is a regular expression nobody should be shown."""
_REQUIRED_FIELDS: Final = tuple(
    name for name, info in ItemContent.model_fields.items() if info.is_required()
)


# --- errors -----------------------------------------------------------------------------------


class RowError(BaseModel):
    """One reason a file cannot be imported, located as a spreadsheet user finds it."""

    file: FileName = Field(
        default="items", description="items: the item list; materials: the materials CSV"
    )
    row: int | None = Field(
        description="CSV: the spreadsheet row (header = 1, first item = 2); JSON: the position "
        "of the object in the array (first = 1); null: the file as a whole"
    )
    column: str = Field(description="the column header (CSV) or key (JSON); empty: the whole row")
    reason: str = Field(description="Chinese, for the person who fixes the file")

    def as_problem_entry(self) -> dict[str, Any]:
        """The entry in the problem's ``errors``: these members plus ``pointer``/``detail``/
        ``type`` like every other validation error, so generic clients can show it too."""
        where = f"第{self.row}行" if self.row is not None else "文件"
        column = f"“{self.column}”列" if self.column else ""
        prefix = "材料文件" if self.file == "materials" else ""
        parts = [self.file, "" if self.row is None else str(self.row), self.column]
        return {
            **self.model_dump(),
            "pointer": "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts),
            "detail": f"{prefix}{where}{column}：{self.reason}",
            "type": "import_row",
        }


class ImportRejected(ValidationFailed):
    type_slug = "import-rejected"
    title = "导入文件有误，未导入任何事项"

    SHOWN: ClassVar[int] = 3

    @classmethod
    def of(cls, errors: Sequence[RowError]) -> ImportRejected:
        entries = [e.as_problem_entry() for e in errors]
        rows = {(e.file, e.row) for e in errors if e.row is not None}
        shown = "；".join(entry["detail"] for entry in entries[: cls.SHOWN])
        more = " 等" if len(entries) > cls.SHOWN else ""
        scope = f"（涉及 {len(rows)} 行）" if rows else ""
        return cls(
            f"导入文件有 {len(entries)} 处错误{scope}，未导入任何事项：{shown}{more}",
            extra={"errors": entries},
        )


class InvalidMapping(ValidationFailed):
    type_slug = "invalid-column-mapping"
    title = "列映射有误"


class ImportTooLarge(Problem):
    status = 413
    type_slug = "import-too-large"
    title = "导入文件过大"


class UnsupportedImportFormat(Problem):
    status = 415
    type_slug = "unsupported-import-format"
    title = "不支持的导入文件格式"


# --- column mapping ---------------------------------------------------------------------------


class ColumnMapping(BaseModel):
    """How the columns of a file become :class:`ItemContent` fields.

    A field not named in ``columns`` is read from a column of its own name, so our own export
    re-imports with the default (empty) mapping.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str] = Field(
        default_factory=dict, description="target field → source column header"
    )
    material_columns: dict[str, str] = Field(
        default_factory=dict,
        description="material field (or implementing_code) → column header of the materials CSV",
    )
    type_codes: dict[str, str] = Field(
        default_factory=dict, description="type code in the file → 事项类型 (ItemType value)"
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="values of fields the file lacks or leaves empty"
    )
    blank_values: dict[str, list[str]] = Field(
        default_factory=dict,
        description="field → cells that mean the file has no value for it (the Sichuan list's "
        "main_item 未分类: the item is no sub-item)",
    )
    derive_catalog_code: bool = Field(
        default=False,
        description="without a catalog code, derive it from the implementing code "
        "(the part before the region code segment)",
    )

    @field_validator("columns", "defaults", "blank_values")
    @classmethod
    def _item_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(ITEM_FIELDS))
        if unknown:
            raise ValueError(f"不是事项字段：{'、'.join(unknown)}")
        return value

    @field_validator("material_columns")
    @classmethod
    def _material_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {*MATERIAL_FIELDS, MATERIAL_KEY})
        if unknown:
            raise ValueError(f"不是材料字段：{'、'.join(unknown)}")
        return value

    @field_validator("type_codes")
    @classmethod
    def _item_types(cls, value: dict[str, str]) -> dict[str, str]:
        known = {t.value for t in ItemType}
        wrong = sorted(v for v in set(value.values()) if v not in known)
        if wrong:
            raise ValueError(
                f"不是事项类型：{'、'.join(wrong)}（可用：{'、'.join(sorted(known))}）"
            )
        return value

    def source(self, field: str) -> str:
        return self.columns.get(field, field)

    def material_source(self, field: str) -> str:
        return self.material_columns.get(field, field)


DEFAULT_MAPPING: Final = ColumnMapping()

GUANGAN_MAPPING: Final = ColumnMapping(
    columns={
        "department": "department",
        "name": "name",
        "implementing_code": "item_code",
        "item_type": "task_type",
        "region_code": "area_code",
        # 主项: the main item the row is a sub-item (子项) of, by name.
        "main_item": "main_item",
    },
    blank_values={"main_item": ["未分类"]},
    # The Sichuan portal's task_type codes, read off the names of the published list.
    type_codes={
        "1": ItemType.LICENSING.value,
        "5": ItemType.BENEFIT.value,
        "7": ItemType.CONFIRMATION.value,
        "8": ItemType.REWARD.value,
        "9": ItemType.ADJUDICATION.value,
        "10": ItemType.OTHER_POWER.value,
        "20": ItemType.PUBLIC_SERVICE.value,
    },
    # Every department of the list is a district (区) department.
    defaults={"department_level": "区"},
    derive_catalog_code=True,
)

MAPPINGS: Final[dict[str, ColumnMapping]] = {
    "default": DEFAULT_MAPPING,
    "guangan": GUANGAN_MAPPING,
}


def resolve_mapping(spec: str | None) -> ColumnMapping:
    """A mapping by name (``default``, ``guangan``) or given as a JSON object."""
    text = (spec or "default").strip()
    if text.startswith("{"):
        try:
            return ColumnMapping.model_validate_json(text)
        except ValidationError as exc:
            errors = field_errors_from_validation(exc.errors())
            raise InvalidMapping(
                "列映射有误：" + "；".join(f"{e.pointer or '/'} {e.detail}" for e in errors),
                extra={"errors": [e.model_dump() for e in errors]},
            ) from None
    try:
        return MAPPINGS[text]
    except KeyError:
        raise InvalidMapping(
            f"未知的列映射“{text[:50]}”，可用：{'、'.join(MAPPINGS)}，或一个 JSON 对象"
        ) from None


def derive_catalog_code(implementing_code: str) -> str:
    """The catalog (basic) code inside an implementing code.

    Sichuan codes read ``<basic code>-<12-digit region>-…`` and the basic code itself may hold
    dashes (``G-000007-001-511602000000-000-…``), so it is everything before the region
    segment; a code without one loses its last segment (``E-000021-001-1111111111111111``).
    """
    parts = implementing_code.split("-")
    for index, part in enumerate(parts[1:], start=1):
        if len(part) == 12 and part.isdigit():
            return "-".join(parts[:index])
    return "-".join(parts[:-1]) if len(parts) > 1 else implementing_code


# --- reading ----------------------------------------------------------------------------------


_INVALID: Final = object()
"""Placeholder for a cell already reported, so validation does not report it again."""


class _CellError(ValueError):
    """A cell that cannot become a value; the message is the Chinese reason."""


@dataclass(frozen=True)
class _Record:
    row: int
    cells: Mapping[str, Any]
    textual: bool
    """CSV cells are text to convert; JSON values are typed already."""


@dataclass(frozen=True)
class ParsedRow:
    row: int
    content: ItemContent


@dataclass(frozen=True)
class ParsedFile:
    rows: list[ParsedRow]
    ignored_columns: list[str]
    """Columns of the file that feed no field (they are not imported)."""


def _decode(data: bytes | str, file: FileName) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Chinese Windows saves "CSV" as GBK; GB18030 is its superset.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ImportRejected.of(
            [
                RowError(
                    file=file, row=None, column="", reason="无法识别文件编码，请另存为 UTF-8 编码"
                )
            ]
        ) from None


def _read_csv(text: str, file: FileName) -> tuple[list[str], list[_Record]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ImportRejected.of([RowError(file=file, row=1, column="", reason="缺少表头行")])
        headers = [h.strip() for h in header]
        errors = [
            RowError(file=file, row=1, column=name, reason="表头中有重复的列名")
            for name, count in Counter(headers).items()
            if count > 1 and name
        ]
        records: list[_Record] = []
        # Records, not lines: a quoted cell may span lines but is still one spreadsheet row.
        for row, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if any(cell.strip() for cell in cells[len(headers) :]):
                errors.append(
                    RowError(
                        file=file,
                        row=row,
                        column="",
                        reason=f"该行有 {len(cells)} 列，多于表头的 {len(headers)} 列",
                    )
                )
                continue
            cells = [unescape_formula(cell) for cell in cells]
            records.append(
                _Record(row=row, cells=dict(zip(headers, cells, strict=False)), textual=True)
            )
    except csv.Error as exc:
        raise ImportRejected.of(
            [RowError(file=file, row=reader.line_num, column="", reason=f"CSV 格式错误：{exc}")]
        ) from None
    if errors:
        raise ImportRejected.of(errors)
    return headers, records


def _read_json(text: str) -> list[_Record]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRejected.of(
            [
                RowError(
                    row=None,
                    column="",
                    reason=f"不是合法的 JSON（第 {exc.lineno} 行第 {exc.colno} 列附近：{exc.msg}）",
                )
            ]
        ) from None
    if not isinstance(document, list):
        raise ImportRejected.of(
            [RowError(row=None, column="", reason="JSON 文件应为事项对象组成的数组")]
        )
    records: list[_Record] = []
    errors: list[RowError] = []
    for row, entry in enumerate(document, start=1):
        if isinstance(entry, dict):
            records.append(_Record(row=row, cells=entry, textual=False))
        else:
            errors.append(RowError(row=row, column="", reason="应为 JSON 对象"))
    if errors:
        raise ImportRejected.of(errors)
    return records


def _from_text(field: str, text: str) -> Any:
    """A non-empty, stripped CSV cell as the value of ``field``."""
    if field in _LIST_FIELDS:
        if text.startswith("["):
            # Our export writes a list as JSON when an element holds the separator.
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise _CellError("以 [ 开头的列表应为 JSON 数组") from None
            if not isinstance(value, list):
                raise _CellError("以 [ 开头的列表应为 JSON 数组")
            return value
        return [part.strip() for part in _LIST_SEPARATOR.split(text) if part.strip()]
    if field in _JSON_FIELDS:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _CellError(f"应为 JSON（第 {exc.colno} 个字符附近：{exc.msg}）") from None
    if field in _INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            raise _CellError("应为整数") from None
    if field in _BOOL_FIELDS:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _CellError("应为 true 或 false（也可写 是 / 否）")
    return text


def _location(loc: Sequence[str | int]) -> str:
    """``(0, "name")`` → ``第1项 name：`` for errors inside a list or object."""
    if not loc:
        return ""
    return " ".join(f"第{part + 1}项" if isinstance(part, int) else part for part in loc) + "："


def _validation_errors(
    exc: ValidationError, *, row: int, file: FileName, column_of: Mapping[str, str]
) -> list[RowError]:
    errors: list[RowError] = []
    for raw, friendly in zip(exc.errors(), field_errors_from_validation(exc.errors()), strict=True):
        loc = tuple(raw.get("loc", ()))
        field = str(loc[0]) if loc else ""
        detail = friendly.detail
        if raw.get("type") == "string_pattern_mismatch" and loc and str(loc[-1]) in _PATTERNS:
            detail = _PATTERNS[str(loc[-1])]
        errors.append(
            RowError(
                file=file,
                row=row,
                column=column_of.get(field, field),
                reason=_location(loc[1:]) + detail,
            )
        )
    return errors


def _type_from_code(value: Any, mapping: ColumnMapping) -> Any:
    code = str(value).strip()
    if code in mapping.type_codes:
        return mapping.type_codes[code]
    if code in {t.value for t in ItemType}:
        return code
    known = "、".join(f"{k} {v}" for k, v in mapping.type_codes.items())
    raise _CellError(f"未知的事项类型代码“{code}”（可用：{known}）")


def _item_values(record: _Record, mapping: ColumnMapping, errors: list[RowError]) -> dict[str, Any]:
    """The ItemContent input of one record; cell errors are appended to ``errors``."""
    values: dict[str, Any] = {}
    for field in ITEM_FIELDS:
        column = mapping.source(field)
        if column not in record.cells:
            continue
        value = record.cells[column]
        try:
            if record.textual:
                value = str(value).strip()
                if not value or value in mapping.blank_values.get(field, ()):
                    continue
                value = _from_text(field, value)
            if field == "item_type" and mapping.type_codes and value is not None:
                value = _type_from_code(value, mapping)
        except _CellError as exc:
            errors.append(RowError(row=record.row, column=column, reason=str(exc)))
            values[field] = _INVALID
            continue
        values[field] = value
    if not record.textual:
        sources = {mapping.source(f) for f in ITEM_FIELDS}
        errors.extend(
            RowError(row=record.row, column=str(key), reason="不认识的字段")
            for key in record.cells
            if key not in sources
        )
    for field, default in mapping.defaults.items():
        values.setdefault(field, default)
    code = values.get("implementing_code")
    if mapping.derive_catalog_code and "catalog_code" not in values and isinstance(code, str):
        values["catalog_code"] = derive_catalog_code(code.strip())
    return values


def _validate_item(
    record: _Record, values: dict[str, Any], mapping: ColumnMapping, errors: list[RowError]
) -> ItemContent | None:
    reported = {f for f, v in values.items() if v is _INVALID}
    column_of = {f: mapping.source(f) for f in ITEM_FIELDS}
    try:
        content = ItemContent.model_validate({f: v for f, v in values.items() if v is not _INVALID})
    except ValidationError as exc:
        errors.extend(
            e
            for e in _validation_errors(exc, row=record.row, file="items", column_of=column_of)
            # A field whose cell was already reported is "missing" now; say it once.
            if not any(e.column == column_of[f] for f in reported)
        )
        return None
    if reported:
        return None
    problems = service.content_errors(content)
    errors.extend(
        RowError(
            row=record.row, column=column_of.get(p.field.split("/")[0], p.field), reason=p.message
        )
        for p in problems
    )
    return None if problems else content


def _read_materials(
    data: bytes | str, mapping: ColumnMapping, errors: list[RowError]
) -> dict[str, list[tuple[int, dict[str, Any] | None]]]:
    """Materials by implementing code, each with its row in the materials file, in file order
    (None: the row is bad and already reported)."""
    headers, records = _read_csv(_decode(data, "materials"), "materials")
    key = mapping.material_source(MATERIAL_KEY)
    if key not in headers:
        raise ImportRejected.of(
            [RowError(file="materials", row=1, column=key, reason="缺少必需的列（实施编码）")]
        )
    column_of = {f: mapping.material_source(f) for f in MATERIAL_FIELDS}
    by_code: dict[str, list[tuple[int, dict[str, Any] | None]]] = {}
    for record in records:
        code = str(record.cells.get(key, "")).strip()
        if not code:
            errors.append(RowError(file="materials", row=record.row, column=key, reason="此项必填"))
            continue
        values: dict[str, Any] = {}
        bad = False
        for field, column in column_of.items():
            text = str(record.cells.get(column, "")).strip()
            if not text:
                continue
            try:
                values[field] = _from_text(field, text)
            except _CellError as exc:
                errors.append(
                    RowError(file="materials", row=record.row, column=column, reason=str(exc))
                )
                bad = True
        material: dict[str, Any] | None = None
        try:
            material = Material.model_validate(values).model_dump(mode="json")
        except ValidationError as exc:
            errors.extend(
                _validation_errors(exc, row=record.row, file="materials", column_of=column_of)
            )
        by_code.setdefault(code, []).append((record.row, None if bad else material))
    return by_code


def parse_items(
    data: bytes | str,
    *,
    fmt: Format,
    mapping: ColumnMapping = DEFAULT_MAPPING,
    materials: bytes | str | None = None,
    max_rows: int = MAX_IMPORT_ROWS,
) -> ParsedFile:
    """Every row of a file as validated content, or :class:`ImportRejected` naming every bad
    row. Touches no database."""
    text = _decode(data, "items")
    ignored: list[str] = []
    if fmt == "csv":
        headers, records = _read_csv(text, "items")
        sources = {mapping.source(f) for f in ITEM_FIELDS}
        ignored = [h for h in headers if h and h not in sources]
        missing = [
            RowError(
                row=1,
                column=mapping.source(field),
                reason=f"缺少必需的列（{_LABELS.get(field, field)}）",
            )
            for field in _REQUIRED_FIELDS
            if mapping.source(field) not in headers
            and field not in mapping.defaults
            and not (
                field == "catalog_code"
                and mapping.derive_catalog_code
                and mapping.source("implementing_code") in headers
            )
        ]
        if missing:
            raise ImportRejected.of(missing)
    else:
        records = _read_json(text)
    if not records:
        raise ImportRejected.of([RowError(row=None, column="", reason="文件中没有事项")])
    if len(records) > max_rows:
        raise ImportTooLarge(
            f"文件有 {len(records)} 个事项，一次最多导入 {max_rows} 个，请分批导入"
        )

    errors: list[RowError] = []
    extra_materials = _read_materials(materials, mapping, errors) if materials is not None else {}
    code_column = mapping.source("implementing_code")
    first_row: dict[str, int] = {}
    rows: list[ParsedRow] = []
    for record in records:
        values = _item_values(record, mapping, errors)
        code = values.get("implementing_code")
        if isinstance(code, str):
            if code in first_row:
                errors.append(
                    RowError(
                        row=record.row,
                        column=code_column,
                        reason=f"实施编码 {code} 与第{first_row[code]}行重复",
                    )
                )
            else:
                first_row[code] = record.row
            if code in extra_materials:
                if values.get("materials"):
                    errors.append(
                        RowError(
                            row=record.row,
                            column=mapping.source("materials"),
                            reason="材料既写在本列又写在材料文件中，只能用一种方式",
                        )
                    )
                else:
                    values["materials"] = [m for _, m in extra_materials[code] if m is not None]
        content = _validate_item(record, values, mapping, errors)
        if content is not None:
            rows.append(ParsedRow(row=record.row, content=content))
    for code, entries in extra_materials.items():
        if code not in first_row:
            errors.extend(
                RowError(
                    file="materials",
                    row=row,
                    column=mapping.material_source(MATERIAL_KEY),
                    reason=f"实施编码 {code} 不在事项文件中",
                )
                for row, _ in entries
            )
    if errors:
        errors.sort(key=lambda e: (e.file != "items", e.row or 0))
        raise ImportRejected.of(errors)
    return ParsedFile(rows=rows, ignored_columns=ignored)


# --- applying ---------------------------------------------------------------------------------


class ImportReport(BaseModel):
    """What an import did. Codes are implementing codes, in file order."""

    rows: int
    created: int
    updated: int
    unchanged: int
    published: int
    drafts_incomplete: int
    """Rows whose newest version is a draft that still lacks elements needed to publish it."""
    created_codes: list[str]
    updated_codes: list[str]
    unchanged_codes: list[str]
    published_codes: list[str]
    incomplete_codes: list[str]
    missing_elements: dict[str, int] = Field(
        description="field → how many of the incomplete drafts lack it"
    )
    ignored_columns: list[str] = Field(description="columns of the file that feed no field")
    review_required_codes: list[str] = Field(
        default_factory=list,
        description="complete drafts not published because they change rules, conditions or "
        "time limits: each must be submitted and approved by a second person (四眼原则)",
    )


_LOOKUP_CHUNK: Final = 5000
"""Codes per lookup query (PostgreSQL takes at most 32 767 bind parameters)."""


async def _newest_versions(session: AsyncSession, codes: Sequence[str]) -> dict[str, ItemVersion]:
    found: dict[str, ItemVersion] = {}
    for start in range(0, len(codes), _LOOKUP_CHUNK):
        found.update(
            await repository.latest_versions_by_codes(session, codes[start : start + _LOOKUP_CHUNK])
        )
    return found


def _same(version: ItemVersion, content: ItemContent) -> bool:
    # Both sides through the model, so defaults and number forms compare equal.
    stored = ItemContent.model_validate(version.content).model_dump(mode="json")
    return stored == content.model_dump(mode="json")


async def _check_scope(
    actor: review.Actor, parsed: ParsedFile, newest: Mapping[str, ItemVersion]
) -> None:
    """A department's admin imports only their own department's items: every row's content,
    and the item it would revise, must be theirs. Refused as a whole (nothing written)."""
    if actor.platform:
        return
    others = [
        row.content.implementing_code
        for row in parsed.rows
        if not review.in_scope(
            actor, department=row.content.department, region_code=row.content.region_code
        )
        or (
            (existing := newest.get(row.content.implementing_code)) is not None
            and not review.in_scope(
                actor, department=existing.department, region_code=existing.region_code
            )
        )
    ]
    if others:
        shown = "、".join(others[:20]) + ("等" if len(others) > 20 else "")
        raise review.OtherDepartment(
            f"导入文件含其他部门或地区的事项（{shown}），只能导入本部门（"
            f"{actor.department or '未设置部门'}）的事项；跨部门导入由平台事项管理员进行",
            extra={"codes": others[:100]},
        )


async def apply_rows(
    session: AsyncSession,
    *,
    parsed: ParsedFile,
    publish_complete: bool = False,
    actor: review.Actor | None = None,
    progress: Callable[[int], Awaitable[None]] | None = None,
    progress_every: int = 50,
) -> ImportReport:
    """Write validated rows: new codes as drafts, changes as drafts (revisions of published
    items), identical rows not at all. Publishes only with ``publish_complete``, and then only
    rows whose content has nothing left to complete and that change no rule, condition or time
    limit (those take a second person: they stay drafts, listed in ``review_required_codes``).
    ``actor``: the staff member importing (None: the system), scoped to their department.
    ``progress(rows done)`` is awaited every ``progress_every`` rows (an import job reports it
    from its own short transaction; this one stays open until the whole file is written)."""
    codes = [row.content.implementing_code for row in parsed.rows]
    newest = await _newest_versions(session, codes)
    if actor is not None:
        await _check_scope(actor, parsed, newest)
    by = actor.subject if actor is not None else None
    review_required: list[str] = []
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    published: list[str] = []
    incomplete: list[str] = []
    missing: Counter[str] = Counter()
    for index, row in enumerate(parsed.rows):
        if progress is not None and index and index % progress_every == 0:
            await progress(index)
        content = row.content
        code = content.implementing_code
        existing = newest.get(code)
        if existing is None:
            version = await service.create_item_draft(session, content=content, by=by)
            created.append(code)
        elif _same(existing, content):
            version = existing
            unchanged.append(code)
        else:
            draft_id = existing.id
            if existing.status != Status.DRAFT:
                draft_id = (
                    await service.start_revision(session, item_id=existing.item_id, by=by)
                ).id
            version = await service.update_draft(
                session, version_id=draft_id, content=content, by=by
            )
            updated.append(code)
        if version.status != Status.DRAFT:
            continue
        problems = service.publication_problems(content)
        if problems:
            incomplete.append(code)
            missing.update({p.field for p in problems})
        elif publish_complete:
            if (await review.change_of(session, version)).needs_review:
                review_required.append(code)
                continue
            await service.publish_version(session, version_id=version.id, published_by=by)
            published.append(code)
    return ImportReport(
        rows=len(parsed.rows),
        created=len(created),
        updated=len(updated),
        unchanged=len(unchanged),
        published=len(published),
        drafts_incomplete=len(incomplete),
        created_codes=created,
        updated_codes=updated,
        unchanged_codes=unchanged,
        published_codes=published,
        incomplete_codes=incomplete,
        missing_elements=dict(missing.most_common()),
        ignored_columns=parsed.ignored_columns,
        review_required_codes=review_required,
    )


async def import_items(
    session: AsyncSession,
    *,
    data: bytes | str,
    fmt: Format,
    mapping: ColumnMapping = DEFAULT_MAPPING,
    materials: bytes | str | None = None,
    publish_complete: bool = False,
    max_rows: int = MAX_IMPORT_ROWS,
    actor: review.Actor | None = None,
) -> ImportReport:
    """Validate a whole file, then apply it; a bad row means nothing is written."""
    parsed = parse_items(data, fmt=fmt, mapping=mapping, materials=materials, max_rows=max_rows)
    return await apply_rows(session, parsed=parsed, publish_complete=publish_complete, actor=actor)


# --- export -----------------------------------------------------------------------------------

# Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell starting with one of
# these as a formula (=HYPERLINK(...) in an item name, opened by whoever downloads the export).
# The export puts an apostrophe in front — the spreadsheet's own "this is text" mark, not shown
# — and the import takes it off again, so export → import changes nothing. Cells that already
# start with apostrophes before such a character get one more, so the two stay inverse.
_FORMULA: Final = re.compile(r"'*[=+\-@\t\r]")


def escape_formula(cell: str) -> str:
    """``=1+1`` → ``'=1+1``; any other cell unchanged."""
    return "'" + cell if _FORMULA.match(cell) else cell


def unescape_formula(cell: str) -> str:
    """The inverse of :func:`escape_formula`: ``'=1+1`` → ``=1+1``."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell, 1) else cell


def _to_text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if field in _LIST_FIELDS:
        items = [str(v) for v in value]
        if any(_LIST_SEPARATOR.search(v) or v != v.strip() or v.startswith("[") for v in items):
            return json.dumps(items, ensure_ascii=False)
        return ";".join(items)
    if field in _JSON_FIELDS:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def export_items(
    session: AsyncSession,
    *,
    fmt: Format,
    include: Callable[[ItemVersion], bool] = lambda _version: True,
) -> str:
    """The newest version (draft or not) of every item ``include`` accepts (a department's
    staff export their own items only), by department and name, in the shape
    :func:`import_items` reads back unchanged with the default mapping."""
    versions = [v for v in await repository.all_items_latest(session) if include(v)]
    contents = [ItemContent.model_validate(v.content).model_dump(mode="json") for v in versions]
    if fmt == "json":
        return json.dumps(contents, ensure_ascii=False, indent=2) + "\n"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ITEM_FIELDS)
    for content in contents:
        writer.writerow([escape_formula(_to_text(f, content[f])) for f in ITEM_FIELDS])
    return buffer.getvalue()
