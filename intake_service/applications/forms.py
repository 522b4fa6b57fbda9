"""The application form: its errors against the item's JSON Schema, in words a citizen
understands, and its personal fields, encrypted at rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from intake_service.models import Application
from wangban import personal_fields
from wangban.crypto import FieldCipher
from wangban.errors import FieldError

STORED_FORM_CONTEXT = "intake.application.form"
"""Encryption context (plus the field's path) of the personal fields of ``application.form``
at rest (:mod:`wangban.personal_fields`); migration ``intake_0004`` uses the same string."""


def form_errors(schema: Mapping[str, Any] | None, form: Mapping[str, Any]) -> list[FieldError]:
    """Every problem of ``form`` against the item's JSON Schema, each pointing at its field
    with a message a citizen understands."""
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(form), key=lambda e: list(e.absolute_path)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = str(error.message).split("'")[1] if "'" in error.message else ""
            path = [*path, missing]
        pointer = "/form/" + "/".join(path) if path else "/form"
        errors.append(
            FieldError(pointer=pointer, detail=_message(schema, path, error), type=error.validator)
        )
    return errors


def _title(schema: Mapping[str, Any], path: Sequence[str]) -> str:
    node: Any = schema
    for part in path:
        if isinstance(node, Mapping) and "properties" in node and part in node["properties"]:
            node = node["properties"][part]
        elif isinstance(node, Mapping) and "items" in node:
            node = node["items"]
        else:
            break
    title = node.get("title") if isinstance(node, Mapping) else None
    return str(title or (path[-1] if path else "申请表"))


def _message(schema: Mapping[str, Any], path: Sequence[str], error: Any) -> str:
    title = _title(schema, path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        return f"请填写「{title}」"
    if kind == "type":
        names = {
            "string": "文字",
            "integer": "整数",
            "number": "数字",
            "boolean": "是或否",
            "array": "列表",
            "object": "对象",
        }
        expected = value if isinstance(value, str) else (value[0] if value else "")
        return f"「{title}」应填写{names.get(expected, expected)}"
    if kind == "enum":
        return f"「{title}」请从以下选项中选择：{'、'.join(str(v) for v in value)}"
    if kind in ("minLength", "maxLength"):
        word = "至少" if kind == "minLength" else "最多"
        return f"「{title}」{word} {value} 个字"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = "不能小于" if "inimum" in kind else "不能大于"
        return f"「{title}」{word} {value}"
    if kind in ("pattern", "format"):
        return f"「{title}」格式不正确"
    if kind == "additionalProperties":
        return "申请表中有本事项不需要的内容"
    return f"「{title}」填写有误"


def clear_form(application: Application, cipher: FieldCipher) -> dict[str, Any]:
    """The form with its personal fields decrypted: for the applicant and the staff who may
    read the application, and for checking it against the schema; never stored so."""
    form = personal_fields.open_form(application.form, cipher=cipher, context=STORED_FORM_CONTEXT)
    return dict(form)
