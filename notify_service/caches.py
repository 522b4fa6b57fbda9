"""What the notify service reads for every notification, kept per process.

Each notification needs whom the application concerns, how to reach them and the current
template of its kind on each channel. Read from the database every time, that was 4–6 SELECTs
per notification for rows that almost never change; kept here, a 秒批 application's
notifications read none of them.

* **Whom an application concerns** (``application_recipient``) is written once, from
  ``application.submitted``, and never changed: kept (bounded, least recently used first out)
  without expiry, filled when the row commits in this process or is first read.
* **Templates**: a version is never changed, so a version by id is kept without expiry; which
  version is *current* for a kind and channel changes when an administrator saves one. The
  process that takes the save forgets its copy as soon as the save commits; other processes
  see it within :data:`TEMPLATE_TTL_S`. Until then they send with the previous version, which
  was checked when it was saved and is named on each message, as before.
* **Recipients** (openid, WeChat on or off, SMS or inbox only, the number) change when the
  citizen logs in or changes a preference: a few times a year. The process that writes the
  change forgets its copy when it commits; others see it within :data:`RECIPIENT_TTL_S`. The
  worst a stale copy does in that window is choose WeChat for a citizen who has just turned
  it off (a message they had subscribed to) or not yet choose it; an SMS is never sent on
  the copy: the number is read again when the SMS goes.

Entries are plain frozen values, never ORM objects: they outlive the sessions that read them.
Filling after commit (:func:`after_commit`) matters: a value a transaction wrote but then
rolled back must never be served.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from notify_service import repository

TEMPLATE_TTL_S: Final = 30.0
RECIPIENT_TTL_S: Final = 10.0
_MAX_ENTRIES: Final = 20_000
"""Bound per cache: recent applications and citizens, a few MB at most."""

_AFTER_COMMIT = "notify.after_commit"

K = TypeVar("K")
V = TypeVar("V")


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (never if it rolls back)."""
    session.sync_session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, ())
    bind = session.bind
    if isinstance(bind, Connection) and bind.in_transaction():
        # A session joined to an outer transaction still open (tests that roll theirs back):
        # its "commit" released a savepoint, and what it wrote may yet be rolled back.
        return
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


class _Kept(Generic[K, V]):
    """A bounded map whose entries expire ``ttl_s`` after they were put (never, with None)."""

    def __init__(self, *, ttl_s: float | None, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._entries.get(key)
        if found is None:
            return False, None
        expires_at, value = found
        if self._ttl_s is not None and self._clock() >= expires_at:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: K, value: V) -> None:
        expires_at = self._clock() + self._ttl_s if self._ttl_s is not None else 0.0
        self._entries[key] = (expires_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class ApplicationTarget:
    """Whom an application's notifications go to, and what they say about it."""

    application_id: str
    subject: str
    item_code: str
    item_name: str
    applicant_name_masked: str


@dataclass(frozen=True)
class TemplateVersion:
    id: str
    kind: str
    channel: str
    version: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Reach:
    """How a recipient may be reached (the number itself is not kept: read when an SMS goes)."""

    subject: str
    openid: str | None
    wechat_enabled: bool
    fallback: str
    has_phone: bool


_targets: _Kept[str, ApplicationTarget] = _Kept(ttl_s=None)
_versions: _Kept[str, TemplateVersion] = _Kept(ttl_s=None)
_current: _Kept[tuple[str, str], TemplateVersion | None] = _Kept(ttl_s=TEMPLATE_TTL_S)
_reach: _Kept[str, Reach | None] = _Kept(ttl_s=RECIPIENT_TTL_S)


def clear() -> None:
    """Forget everything (tests that empty the tables under a running process)."""
    for kept in (_targets, _versions, _current, _reach):
        kept.clear()


# --- Whom an application concerns ---------------------------------------------------------


async def application_target(
    session: AsyncSession, application_id: str
) -> ApplicationTarget | None:
    found, target = _targets.get(application_id)
    if found:
        return target
    row = await repository.application_recipient(session, application_id)
    if row is None:
        return None  # not kept: the submission may still arrive
    target = ApplicationTarget(
        application_id=row.application_id,
        subject=row.subject,
        item_code=row.item_code,
        item_name=row.item_name,
        applicant_name_masked=row.applicant_name_masked,
    )
    _targets.put(application_id, target)
    return target


def application_recorded(session: AsyncSession, target: ApplicationTarget) -> None:
    """The submission's row was written in ``session``: kept once it commits. (The row is never
    changed; a redelivered submission writes nothing and keeps the same values.)"""
    after_commit(session, lambda: _targets.put(target.application_id, target))


# --- Templates ----------------------------------------------------------------------------


def _version(row: Any) -> TemplateVersion:
    return TemplateVersion(
        id=row.id, kind=row.kind, channel=row.channel, version=row.version, body=dict(row.body)
    )


async def current_template(
    session: AsyncSession, *, kind: str, channel: str
) -> TemplateVersion | None:
    found, version = _current.get((kind, channel))
    if found:
        return version
    row = await repository.current_template(session, kind=kind, channel=channel)
    version = _version(row) if row is not None else None
    _current.put((kind, channel), version)
    if version is not None:
        _versions.put(version.id, version)
    return version


async def template_version(session: AsyncSession, template_id: str) -> TemplateVersion | None:
    found, version = _versions.get(template_id)
    if found:
        return version
    row = await repository.template(session, template_id)
    if row is None:
        return None
    version = _version(row)
    _versions.put(template_id, version)
    return version


def template_saved(session: AsyncSession, *, kind: str, channel: str) -> None:
    """A new current version of ``kind`` on ``channel`` is being saved in ``session``."""
    after_commit(session, lambda: _current.forget((kind, channel)))


# --- Recipients ---------------------------------------------------------------------------


async def reach(session: AsyncSession, subject: str) -> Reach | None:
    found, value = _reach.get(subject)
    if found:
        return value
    row = await repository.recipient(session, subject)
    value = (
        Reach(
            subject=subject,
            openid=row.openid,
            wechat_enabled=bool(row.wechat_enabled),
            fallback=row.fallback,
            has_phone=bool(row.phone_enc and row.phone_index),
        )
        if row is not None
        else None
    )
    _reach.put(subject, value)
    return value


def recipient_changed(session: AsyncSession, subject: str) -> None:
    """The recipient row of ``subject`` is being written in ``session``."""
    _reach.forget(subject)
    after_commit(session, lambda: _reach.forget(subject))
