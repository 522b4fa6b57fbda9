"""The citizen lexicon shipped with the catalogue: everyday words → the catalogue's terms.

Citizens type 开饭店, 办健康证, 摆摊 or 社保卡; the items are called 食品经营许可, 食品行业从业人员
预防性体检合格证办理, 临时便民服务摊点设置 and 社会保障卡申领. ``citizen_lexicon.yaml`` beside
this module holds several hundred such groups, by theme, each with where its phrases come from.
It is production data: ``wangban migrate`` loads it as the *shipped* layer of the synonym table
(:func:`catalog_service.service.load_shipped_lexicon`), next to the groups admins keep.

This module only reads and checks the file; nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

LEXICON_FILE = Path(__file__).parent / "citizen_lexicon.yaml"

MAX_PHRASE_LENGTH = 60
"""A phrase is stored in ``synonym_group.phrases`` (``varchar(60)``)."""


class LexiconError(ValueError):
    """The lexicon file is malformed; the message names the place."""


@dataclass(frozen=True)
class LexiconGroup:
    """One group: what citizens say and the catalogue's terms for it, all equivalent in search.

    ``key`` (``theme/first phrase``) is stable across versions as long as the group keeps its
    theme and first phrase: it is what an admin names to disable the group."""

    key: str
    theme: str
    say: tuple[str, ...]
    terms: tuple[str, ...]
    source: str

    @property
    def phrases(self) -> list[str]:
        """Citizen phrases then terms, each once, as the synonym table stores a group."""
        return list(dict.fromkeys((*self.say, *self.terms)))


@dataclass(frozen=True)
class Lexicon:
    version: int
    sources: dict[str, str]
    theme_labels: dict[str, str]
    groups: tuple[LexiconGroup, ...]

    def by_theme(self) -> dict[str, list[LexiconGroup]]:
        themes: dict[str, list[LexiconGroup]] = {theme: [] for theme in self.theme_labels}
        for group in self.groups:
            themes[group.theme].append(group)
        return themes


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise LexiconError(f"{where}: expected a non-empty list of phrases")
    phrases: list[str] = []
    for phrase in value:
        # YAML reads 12315 as a number; a phrase is always text.
        text = str(phrase).strip() if isinstance(phrase, str | int) else ""
        if not text or len(text) > MAX_PHRASE_LENGTH:
            raise LexiconError(f"{where}: bad phrase {phrase!r}")
        phrases.append(text)
    return tuple(phrases)


def parse_lexicon(raw: Any) -> Lexicon:
    """Check and read the YAML document of a lexicon (see ``citizen_lexicon.yaml``)."""
    if not isinstance(raw, dict):
        raise LexiconError("the lexicon is not a mapping")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LexiconError("version: expected a positive integer")
    sources = raw.get("sources")
    themes = raw.get("themes")
    if not isinstance(sources, dict) or not isinstance(themes, dict):
        raise LexiconError("expected `sources` and `themes` mappings")
    labels: dict[str, str] = {}
    groups: list[LexiconGroup] = []
    keys: set[str] = set()
    for theme, body in themes.items():
        if not isinstance(body, dict) or not isinstance(body.get("groups"), list):
            raise LexiconError(f"{theme}: expected `label` and `groups`")
        labels[str(theme)] = str(body.get("label", theme))
        for index, entry in enumerate(body["groups"]):
            where = f"{theme}[{index}]"
            if not isinstance(entry, dict):
                raise LexiconError(f"{where}: expected a mapping")
            say = _strings(entry.get("say"), f"{where}.say")
            terms = _strings(entry.get("terms"), f"{where}.terms")
            source = str(entry.get("source"))
            if source not in sources:
                raise LexiconError(f"{where}: source {source!r} is not one of {sorted(sources)}")
            key = f"{theme}/{say[0]}"
            if key in keys:
                raise LexiconError(f"{where}: a second group with key {key!r}")
            keys.add(key)
            groups.append(
                LexiconGroup(key=key, theme=str(theme), say=say, terms=terms, source=source)
            )
    return Lexicon(
        version=version,
        sources={str(k): str(v) for k, v in sources.items()},
        theme_labels=labels,
        groups=tuple(groups),
    )


def load_lexicon(path: Path = LEXICON_FILE) -> Lexicon:
    return parse_lexicon(yaml.safe_load(path.read_text(encoding="utf-8")))


@cache
def shipped_lexicon() -> Lexicon:
    """The lexicon this release ships (read once per process)."""
    return load_lexicon()
