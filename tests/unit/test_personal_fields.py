"""Personal form fields (``x-personal``): what is sealed, how it opens, and the catalog's check."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from catalog_service.service import content_errors
from tests.catalog.support import item_content
from wangban import personal_fields
from wangban.crypto import DecryptionError, FieldCipher

CIPHER = FieldCipher({"k1": base64.b64decode(base64.b64encode(b"k" * 32))}, active_key_id="k1")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "office": {"type": "string"},
        "spouse": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "x-personal": True},
                "id_number": {"$ref": "#/$defs/id"},
                "relation": {"type": "string"},
            },
        },
        "children": {"type": "array", "items": {"$ref": "#/$defs/child"}},
        "payout": {"type": "object", "x-personal": True},
    },
    "$defs": {
        "id": {"type": "string", "x-personal": True},
        "child": {"type": "object", "properties": {"name": {"x-personal": True}, "age": {}}},
    },
}
FORM = {
    "office": "南城",
    "spouse": {"name": "李明轩", "id_number": "441900199307096127", "relation": "配偶"},
    "children": [{"name": "李小明", "age": 3}],
    "payout": {"bank": "东莞银行", "account": "6222020200112233445"},
}


def test_marked_values_nested_in_objects_arrays_and_refs_are_sealed_and_open_again() -> None:
    sealed = personal_fields.seal(FORM, SCHEMA, cipher=CIPHER, context="t")
    text = str(sealed)
    for personal in ("李明轩", "441900199307096127", "李小明", "6222020200112233445", "东莞银行"):
        assert personal not in text
    assert sealed["office"] == "南城" and sealed["spouse"]["relation"] == "配偶"
    assert sealed["children"][0]["age"] == 3
    assert personal_fields.open_form(sealed, cipher=CIPHER, context="t") == FORM
    assert personal_fields.seal(sealed, SCHEMA, cipher=CIPHER, context="t") == sealed
    whole = personal_fields.seal_all(FORM, cipher=CIPHER, context="t")
    assert personal_fields.is_envelope(whole)
    assert personal_fields.open_form(whole, cipher=CIPHER, context="t") == FORM


def test_a_sealed_value_moved_to_another_field_does_not_open() -> None:
    sealed = personal_fields.seal(FORM, SCHEMA, cipher=CIPHER, context="t")
    swapped = {**sealed, "spouse": {**sealed["spouse"], "name": sealed["spouse"]["id_number"]}}
    with pytest.raises(DecryptionError):
        personal_fields.open_form(swapped, cipher=CIPHER, context="t")


def test_the_catalog_refuses_an_x_personal_that_is_not_a_boolean() -> None:
    schema = {"type": "object", "properties": {"phone": {"type": "string", "x-personal": "true"}}}
    problems = content_errors(item_content(form_schema=schema))
    assert [p.field for p in problems] == ["form_schema"]
    assert "x-personal" in problems[0].message
    assert content_errors(item_content(form_schema=SCHEMA)) == []
