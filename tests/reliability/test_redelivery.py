"""Scenario 6: duplicate and out-of-order event delivery, injected on purpose — the final
state does not change.

The 秒批 path runs for real (catalog, intake, approval, sharing and notify with their relays
and consumers, a real broker, real PostgreSQL) for a few applications to the end. Then a plain
aiokafka producer puts every event of those applications back on the real topics: exact
duplicates (same envelope ids), the same again in reverse order, and the same payloads under
new envelope ids (a buggy upstream). Once every consumer group has caught up, each service's
state — application status and timeline, case, decisions and actions, certificates,
notifications and messages — must be exactly what it was, with no dead letter.

Then the order itself: ``application.accepted`` delivered to approval before its
``application.submitted`` must end as the in-order delivery does (decided, one certificate).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select, text

from approval_service.models import Case, CaseAction, Decision
from contracts.intake.v1 import ApplicationAccepted
from intake_service.models import Application, TimelineEntry
from notify_service.models import Message, Notification
from sharing_service.models import Certificate
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.reliability.support import Platform, persona_who, report, running_platform
from wangban.db import Database
from wangban.events import CLOUDEVENTS_CONTENT_TYPE, Envelope, envelope_for, uuid7
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

SCHEMAS = ("catalog", "intake", "approval", "sharing", "notify")
SUBMITTED = "cn.wangban.intake.application.submitted.v1"
ACCEPTED = "cn.wangban.intake.application.accepted.v1"


# --- observing the platform ---------------------------------------------------------------------


async def snapshot(database: Database, application_ids: Sequence[str]) -> dict[str, Any]:
    """Everything a citizen, a reviewer or an auditor could see of these applications."""
    ids = list(application_ids)
    async with database.sessionmaker() as session:
        applications = {
            a.id: (a.status, a.status_reason, a.decided_by)
            for a in await session.scalars(select(Application).where(Application.id.in_(ids)))
        }
        timeline = sorted(
            (t.application_id, t.seq, t.to_status, t.actor)
            for t in await session.scalars(
                select(TimelineEntry).where(TimelineEntry.application_id.in_(ids))
            )
        )
        cases = {
            c.application_id: (c.status, c.step, c.decided_at)
            for c in await session.scalars(select(Case).where(Case.application_id.in_(ids)))
        }
        decisions = sorted(
            (d.application_id, d.id, d.kind, d.outcome, d.reason)
            for d in await session.scalars(select(Decision).where(Decision.application_id.in_(ids)))
        )
        actions = sorted(
            (a.application_id, a.seq, a.action)
            for a in await session.scalars(
                select(CaseAction).where(CaseAction.application_id.in_(ids))
            )
        )
        certificates = sorted(
            (c.application_id, c.id, c.status)
            for c in await session.scalars(
                select(Certificate).where(Certificate.application_id.in_(ids))
            )
        )
        notifications = sorted(
            (n.application_id or "", n.id, n.kind)
            for n in await session.scalars(
                select(Notification).where(Notification.application_id.in_(ids))
            )
        )
        messages = sorted(
            (m.application_id or "", m.id, m.kind, m.channel, m.status)
            for m in await session.scalars(select(Message).where(Message.application_id.in_(ids)))
        )
    return {
        "applications": applications,
        "timeline": timeline,
        "cases": cases,
        "decisions": decisions,
        "case_actions": actions,
        "certificates": certificates,
        "notifications": notifications,
        "messages": messages,
    }


async def dead_letters(database: Database) -> dict[str, int]:
    async with database.sessionmaker() as session:
        return {
            schema: int(
                (
                    await session.execute(text(f'SELECT count(*) FROM "{schema}".dead_letter'))
                ).scalar_one()
            )
            for schema in SCHEMAS
        }


async def published_envelopes(database: Database, application_ids: Sequence[str]) -> list[Envelope]:
    """Every event the services published about these applications, in publication order."""
    rows: list[tuple[Any, str]] = []
    async with database.sessionmaker() as session:
        for schema in ("intake", "approval", "sharing"):
            result = await session.execute(
                text(
                    f'SELECT created_at, envelope FROM "{schema}".outbox '
                    "WHERE envelope->'data'->>'application_id' = ANY(:ids) ORDER BY seq"
                ),
                {"ids": list(application_ids)},
            )
            rows.extend((r.created_at, r.envelope) for r in result)
    rows.sort(key=lambda r: r[0])
    return [Envelope.model_validate(envelope) for _, envelope in rows]


async def caught_up(platform: Platform) -> bool:
    """No outbox holds an unpublished row and every consumer group has committed the end of
    every partition it reads."""
    async with platform.database.sessionmaker() as session:
        for schema in SCHEMAS:
            pending = (
                await session.execute(
                    text(f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL')
                )
            ).scalar_one()
            if pending:
                return False
    reader = AIOKafkaConsumer(
        bootstrap_servers=platform.settings.kafka_bootstrap, enable_auto_commit=False
    )
    await reader.start()
    try:
        await reader.topics()  # metadata of every topic
        for runner in platform.runners:
            group = runner._kafka  # the group member itself: its committed offsets
            assert group is not None
            partitions = [
                TopicPartition(topic, p)
                for topic in runner.consumer.topics
                for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
            ends = await reader.end_offsets(partitions)
            for tp in partitions:
                if ends[tp] > 0 and ((await group.committed(tp)) or 0) < ends[tp]:
                    return False
    finally:
        await reader.stop()
    return True


async def settle(platform: Platform, *, timeout_s: float = 30) -> None:
    """Caught up twice in a row (a handler that published something is seen through)."""
    await eventually(lambda: caught_up(platform), timeout_s=timeout_s, interval_s=0.2)
    await eventually(lambda: caught_up(platform), timeout_s=timeout_s, interval_s=0.2)


async def inject(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    """Put these envelopes on their topics as the relay does (key: the aggregate id)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                TOPICS[envelope.type],
                value=envelope.to_bytes(),
                key=str(envelope.data["application_id"]).encode(),
                headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
            )
    finally:
        await producer.stop()


TOPICS: dict[str, str] = {}


async def topics_of(database: Database) -> dict[str, str]:
    """Event type → topic, as the services' outboxes recorded them."""
    async with database.sessionmaker() as session:
        for schema in ("intake", "approval", "sharing"):
            result = await session.execute(
                text(f'SELECT DISTINCT event_type, topic FROM "{schema}".outbox')
            )
            TOPICS.update({r.event_type: r.topic for r in result})
    return TOPICS


# --- the tests ----------------------------------------------------------------------------------


async def test_duplicated_reordered_and_re_enveloped_events_change_nothing(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    started = time.monotonic()
    async with running_platform(infrastructure, database, tmp_path) as platform:
        elder, young = persona_who("pass"), persona_who("fail")
        applied = [await platform.apply(p) for p in (elder, elder, young)]
        ids = [application_id for _, application_id in applied]

        async def finished() -> bool:
            state = await snapshot(database, ids)
            statuses = [state["applications"][i][0] for i in ids]
            told = {(n[0], n[2]) for n in state["notifications"]}
            return (
                statuses == ["delivered", "delivered", "completed"]
                and all((i, "certificate.issued") in told for i in ids[:2])
                and all(m[4] == "delivered" for m in state["messages"])
            )

        await eventually(finished, timeout_s=30)
        await settle(platform)
        before = await snapshot(database, ids)
        dead_before = await dead_letters(database)
        envelopes = await published_envelopes(database, ids)
        await topics_of(database)
        # Accepted at submission (no application.accepted), approved by machine (no
        # case.completed); the denial is still followed by case.completed.
        assert {e.type.split(".")[-2] for e in envelopes} >= {
            "submitted",
            "approved",
            "denied",
            "completed",
            "issued",
        }
        re_enveloped = [e.model_copy(update={"id": str(uuid7())}) for e in reversed(envelopes)]
        injected = [*envelopes, *reversed(envelopes), *re_enveloped]
        await inject(platform.settings, injected)
        await settle(platform)
        after = await snapshot(database, ids)
        dead_after = await dead_letters(database)

    for part in before:
        assert after[part] == before[part], part
    assert dead_after == dead_before  # nothing here is unprocessable
    assert len(before["certificates"]) == 2
    assert [d[3] for d in sorted(before["decisions"], key=lambda d: ids.index(d[0]))] == [
        "approve",
        "approve",
        "deny",
    ]
    report(
        "redelivery",
        **{
            "applications": len(ids),
            "events_published": len(envelopes),
            "injected": len(injected),
            "exact_duplicates": 2 * len(envelopes),
            "new_envelope_ids": len(re_enveloped),
            "losses": 0,
            "duplicates": sum(len(after[p]) - len(before[p]) for p in before),
            "dead_letters_added": sum(dead_after.values()) - sum(dead_before.values()),
            "seconds": round(time.monotonic() - started, 1),
        },
    )


def _accepted_later(submitted: Envelope) -> tuple[Envelope, Envelope]:
    """The submission as one waiting for 受理 and the ``application.accepted`` that follows it
    (as a window's 预审 has them), from a submission that carried its acceptance."""
    data = dict(submitted.data)
    acceptance = data.pop("acceptance")
    accepted = ApplicationAccepted(
        application_id=data["application_id"],
        item_version_id=data["item_version_id"],
        item_code=data["item_code"],
        **acceptance,
    )
    return (
        submitted.model_copy(update={"data": data}),
        envelope_for(accepted, source=submitted.source),
    )


def _cloned(envelope: Envelope, application_id: str) -> Envelope:
    """The same event for another application, under a new envelope id."""
    return envelope.model_copy(
        update={
            "id": str(uuid7()),
            "subject": application_id,
            "data": {**envelope.data, "application_id": application_id},
        }
    )


async def test_an_acceptance_delivered_before_its_submission_ends_as_in_order_delivery(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    started = time.monotonic()
    async with running_platform(infrastructure, database, tmp_path) as platform:
        _, template_id = await platform.apply(persona_who("pass"))

        async def decided(application_ids: Sequence[str]) -> bool:
            state = await snapshot(database, application_ids)
            return len(state["certificates"]) == len(application_ids) and all(
                c[0] == "approved" for c in state["cases"].values()
            )

        await eventually(lambda: decided([template_id]), timeout_s=30)
        await topics_of(database)
        by_type = {e.type: e for e in await published_envelopes(database, [template_id])}
        submitted = by_type[SUBMITTED]
        if ACCEPTED in by_type:
            accepted = by_type[ACCEPTED]
        else:
            submitted, accepted = _accepted_later(submitted)
            TOPICS[ACCEPTED] = TOPICS[SUBMITTED]  # intake's applications topic
        in_order, reversed_order = str(uuid.uuid4()), str(uuid.uuid4())
        await inject(platform.settings, [_cloned(submitted, in_order), _cloned(accepted, in_order)])
        await inject(
            platform.settings,
            [_cloned(accepted, reversed_order), _cloned(submitted, reversed_order)],
        )
        await eventually(lambda: decided([in_order, reversed_order]), timeout_s=30)
        await settle(platform)
        state = await snapshot(database, [in_order, reversed_order])

    def seen_by_approval(application_id: str) -> Any:
        return (
            state["cases"][application_id][:2],
            [(d[2], d[3], d[4]) for d in state["decisions"] if d[0] == application_id],
            [a[2] for a in state["case_actions"] if a[0] == application_id],
            len([c for c in state["certificates"] if c[0] == application_id]),
        )

    assert seen_by_approval(reversed_order) == seen_by_approval(in_order)
    assert seen_by_approval(in_order) == (
        ("approved", "办结"),
        [("auto", "approve", seen_by_approval(in_order)[1][0][2])],
        ["submitted", "accepted", "approved"],
        1,
    )
    report(
        "out_of_order",
        **{
            "applications": 2,
            "faults": "application.accepted before application.submitted",
            "losses": 0,
            "duplicates": 0,
            "seconds": round(time.monotonic() - started, 1),
        },
    )
