"""Personal fields of application forms, encrypted at rest.

A form schema marks a property ``"x-personal": true`` when its value is personal data about
someone (another person's name or ID number, a phone number, a bank account, an address). Such
values are stored as an envelope ``{"$personal": "<field-encryption token>"}`` in place of the
value, encrypted with the platform field key; every other field stays in clear JSONB, so it can
still be queried. A marked object or array is sealed whole (one token for the subtree).

Sealing needs the schema; opening does not (the marker says what to decrypt), so a reader never
depends on the schema version a row was written with. Each token's encryption context is the
caller's context plus the field's path (``partner_id_number``, ``children[].name``): a token
moved to another field, or to another table, fails to decrypt. Sealing skips values that are
already envelopes, so migrations can run it over rows of any age.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from wangban.crypto import FieldCipher

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import TextClause

__all__ = [
    "KEYWORD",
    "MARKER",
    "has_envelope",
    "is_envelope",
    "keyword_problems",
    "migrate_stored_forms",
    "open_form",
    "seal",
    "seal_all",
]

KEYWORD: Final = "x-personal"
MARKER: Final = "$personal"
_MAX_DEPTH: Final = 32
"""How deep ``$ref`` and combinators are followed; form schemas are shallow, and a recursive
``$ref`` must not loop."""


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MARKER), str)


def has_envelope(value: Any) -> bool:
    """Whether ``value`` holds the marker key anywhere (refuse such input: a value that looks
    sealed would be decrypted on every read)."""
    if isinstance(value, dict):
        return MARKER in value or any(has_envelope(v) for v in value.values())
    if isinstance(value, list):
        return any(has_envelope(v) for v in value)
    return False


def _context(context: str, path: str) -> str:
    return f"{context}:{path}"


def _seal_value(value: Any, *, cipher: FieldCipher, context: str, path: str) -> dict[str, str]:
    plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return {MARKER: cipher.encrypt(plaintext, context=_context(context, path))}


# --- the schema ---------------------------------------------------------------------------------


def _resolve(node: Any, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A local ``$ref`` (``#/$defs/x``) to its target; anything else is taken as it is."""
    if not isinstance(node, Mapping):
        return None
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return node
    target: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            return node
        target = target[part]
    return target if isinstance(target, Mapping) else node


def _expand(nodes: Sequence[Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The schema nodes that apply to one value: each node, the target of its ``$ref`` and
    the members of ``allOf``/``anyOf``/``oneOf`` (any of which may describe the value, so a
    personal mark in any of them counts)."""
    out: list[Mapping[str, Any]] = []
    pending: list[tuple[Any, int]] = [(n, 0) for n in nodes]
    while pending:
        node, depth = pending.pop()
        if depth > _MAX_DEPTH or not isinstance(node, Mapping):
            continue
        # The node itself counts (2020-12 allows keywords such as x-personal beside a $ref).
        out.append(node)
        target = _resolve(node, root)
        if target is not None and target is not node:
            pending.append((target, depth + 1))
        for keyword in ("allOf", "anyOf", "oneOf"):
            members = node.get(keyword)
            if isinstance(members, list):
                pending.extend((m, depth + 1) for m in members)
        for keyword in ("then", "else"):
            if isinstance(node.get(keyword), Mapping):
                pending.append((node[keyword], depth + 1))
    return out


def _property_schemas(nodes: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    found: list[Any] = []
    for node in nodes:
        properties = node.get("properties")
        if isinstance(properties, Mapping) and key in properties:
            found.append(properties[key])
            continue
        patterns = node.get("patternProperties")
        matched = False
        if isinstance(patterns, Mapping):
            for pattern, schema in patterns.items():
                try:
                    if re.search(pattern, key):
                        found.append(schema)
                        matched = True
                except re.error:
                    continue
        additional = node.get("additionalProperties")
        if not matched and isinstance(additional, Mapping):
            found.append(additional)
    return found


def _item_schemas(nodes: Sequence[Mapping[str, Any]], index: int) -> list[Any]:
    found: list[Any] = []
    for node in nodes:
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and index < len(prefix):
            found.append(prefix[index])
        elif isinstance(node.get("items"), Mapping):
            found.append(node["items"])
    return found


# --- sealing and opening ------------------------------------------------------------------------


def _seal(
    value: Any,
    nodes: Sequence[Any],
    *,
    root: Mapping[str, Any],
    cipher: FieldCipher,
    context: str,
    path: str,
) -> Any:
    if is_envelope(value) or not nodes:
        return value
    expanded = _expand(nodes, root)
    if any(node.get(KEYWORD) is True for node in expanded):
        return _seal_value(value, cipher=cipher, context=context, path=path)
    if isinstance(value, dict):
        return {
            key: _seal(
                child,
                _property_schemas(expanded, key),
                root=root,
                cipher=cipher,
                context=context,
                path=f"{path}.{key}" if path else key,
            )
            for key, child in value.items()
        }
    if isinstance(value, list):
        return [
            _seal(
                child,
                _item_schemas(expanded, index),
                root=root,
                cipher=cipher,
                context=context,
                path=f"{path}[]",
            )
            for index, child in enumerate(value)
        ]
    return value


def seal(
    form: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    *,
    cipher: FieldCipher,
    context: str,
) -> dict[str, Any]:
    """The form to store: every value the schema marks personal replaced by its envelope.
    Values already sealed are left as they are (so sealing twice changes nothing)."""
    if schema is None:
        return dict(form)
    sealed = _seal(dict(form), [schema], root=schema, cipher=cipher, context=context, path="")
    assert isinstance(sealed, dict)
    return sealed


def seal_all(form: Mapping[str, Any], *, cipher: FieldCipher, context: str) -> dict[str, Any]:
    """The whole form as one envelope, for a reader that does not know the schema (it cannot
    tell which fields are personal, so it treats them all as personal)."""
    if has_envelope(form):
        return dict(form)  # sealed already, whole or in part (a migration run twice)
    return _seal_value(dict(form), cipher=cipher, context=context, path="")


def open_form(stored: Any, *, cipher: FieldCipher, context: str) -> Any:
    """The form in clear, for the applicant and the staff allowed to read it, or to evaluate
    rules in memory. Raises :class:`wangban.crypto.DecryptionError` for a damaged envelope."""
    return _open(stored, cipher=cipher, context=context, path="")


def _open(value: Any, *, cipher: FieldCipher, context: str, path: str) -> Any:
    if is_envelope(value):
        clear = json.loads(cipher.decrypt(value[MARKER], context=_context(context, path)))
        # A subtree sealed whole may not hold envelopes itself: nothing more to open.
        return clear
    if isinstance(value, dict):
        return {
            key: _open(child, cipher=cipher, context=context, path=f"{path}.{key}" if path else key)
            for key, child in value.items()
        }
    if isinstance(value, list):
        return [_open(child, cipher=cipher, context=context, path=f"{path}[]") for child in value]
    return value


# --- the catalog's check ------------------------------------------------------------------------


def _walk(node: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        yield pointer, node
        for key, child in node.items():
            yield from _walk(child, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk(child, f"{pointer}/{index}")


def keyword_problems(schema: Mapping[str, Any]) -> list[str]:
    """JSON pointers of schema nodes whose ``x-personal`` is not a boolean (a string "true"
    would be silently ignored, leaving the field in clear)."""
    return [
        pointer or "/"
        for pointer, node in _walk(schema, "")
        if KEYWORD in node and not isinstance(node[KEYWORD], bool)
    ]


# --- migrations ---------------------------------------------------------------------------------

_FIRST_UUID: Final = "00000000-0000-0000-0000-000000000000"


def migrate_stored_forms(
    bind: Connection,
    *,
    page: TextClause,
    update: TextClause,
    cipher: FieldCipher,
    context: str,
    seal_forms: bool = True,
    batch: int = 500,
) -> int:
    """Seal (or, for a downgrade, open) the forms of one table in place, a page at a time.

    ``page`` selects ``id``, ``form``, ``form_schema`` and ``version_unknown`` of rows with
    ``id > :after`` ordered by ``id`` (a uuid), at most ``:limit``; ``update`` sets ``form``
    (``:form``, JSON text) of row ``:id``. A row whose version is unknown is sealed whole.
    Returns how many rows changed; sealed values are skipped, so a second run changes none."""
    changed = 0
    after = _FIRST_UUID
    while True:
        rows = bind.execute(page, {"after": after, "limit": batch}).mappings().all()
        if not rows:
            return changed
        for row in rows:
            form = row["form"] or {}
            if not seal_forms:
                new = open_form(form, cipher=cipher, context=context)
            elif row["version_unknown"]:
                new = seal_all(form, cipher=cipher, context=context)
            else:
                new = seal(form, row["form_schema"] or {}, cipher=cipher, context=context)
            if new != form:
                bind.execute(
                    update, {"id": str(row["id"]), "form": json.dumps(new, ensure_ascii=False)}
                )
                changed += 1
        after = str(rows[-1]["id"])
