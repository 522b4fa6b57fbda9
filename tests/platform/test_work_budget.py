"""The work one 秒批 application costs the whole platform, counted (issue "秒批 at a budget").

Every service runs as itself with its relay, consumers and background workers on the real
broker and PostgreSQL; the citizen applies through the gateway, the application is decided by
machine, the certificate is issued and the notifications really leave (WeChat's subscription
messages to a local WeChat server). From the submission to the last notification sent, every
statement each service's engine sends is counted, with its transactions, the events written to
the outboxes and handled by consumers, and the requests the services answered one another.

Counts, not times, so the test is stable; the speed itself is in ``bench/platform_load.py``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import func, select, text

from intake_service.models import Application
from notify_service.models import Message, Notification
from notify_service.templates import NotificationKind
from sandbox import ELDERLY_ALLOWANCE, persona_for
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.notify.support import seed_templates
from tests.reliability.support import ITEM_CODE, commitments, publish_allowance, sign_in_elder
from tests.work_budget import PlatformWork, ServiceWork
from wangban.db import Database
from wangban.settings import Settings

APPID = "wx0b5d7e1f2a3c4d5e"
SECRET = "budget-secret"
APPLICATIONS = 3
"""Measured one after another, each to its end: the figures are per application."""

# The budget (issue 20): per 秒批 application, all services together.
STATEMENTS = 40
WRITE_TRANSACTIONS = 8
EVENTS_WRITTEN = 5
EVENTS_HANDLED = 6
CALLS_BETWEEN_SERVICES = 3
NOTIFICATIONS = 2
NOTIFY_EVENTS = "cn.wangban.notify."


async def _database_now(database: Database) -> datetime:
    async with database.engine.connect() as conn:
        now: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
    return now


async def test_one_auto_approved_application_costs_the_platform_no_more_than_its_budget(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    version_id, content = await publish_allowance(database)
    elder = persona_for(ELDERLY_ALLOWANCE)
    async with (
        serve_fake_wechat(appid=APPID, secret=SECRET) as wechat,
        running_gateway(
            infrastructure,
            database,
            background=True,
            data_dir=tmp_path,
            wechat_api_base=wechat.base_url,
            wechat_appid=APPID,
            wechat_app_secret=SECRET,
            notify_test_mode=False,
            # The relays' recovery poll, grace and marking as in production (tests shorten them).
            outbox_poll_interval_s=Settings.model_fields["outbox_poll_interval_s"].default,
            outbox_recovery_grace_s=Settings.model_fields["outbox_recovery_grace_s"].default,
            outbox_mark_interval_s=Settings.model_fields["outbox_mark_interval_s"].default,
        ) as gateway,
    ):
        api = gateway.client
        await seed_templates(database, gateway.settings)
        current = await api.get(
            "/api/v1/staff/notify/templates", headers=gateway.staff("notify_admin")
        )
        assert current.status_code == 200, current.text
        # Consent to every subscription message the mini-program may ask for: whatever notify
        # decides to push leaves, so each message the design sends is counted.
        template_ids = sorted(
            {t["body"]["template_id"] for t in current.json() if t["channel"] == "wechat"}
        )
        headers = await sign_in_elder(api, gateway.settings, database)
        work = PlatformWork(gateway.services | {"gateway": gateway.app})

        async def apply() -> str:
            # A one-time consent per message, as the mini-program asks at the moment of applying.
            consented = await api.post(
                "/api/v1/subscriptions",
                json={"results": dict.fromkeys(template_ids, "accept")},
                headers=headers,
            )
            assert consented.status_code == 200, consented.text
            return await submit()

        async def submit() -> str:
            applied = await api.post(
                "/api/v1/applications",
                json={
                    "item_code": ITEM_CODE,
                    "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
                    "materials": commitments(content),
                },
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert applied.status_code == 201, applied.text
            assert applied.json()["item_version_id"] == version_id
            return str(applied.json()["id"])

        async def finished(application_id: str) -> None:
            async def done() -> bool:
                async with database.sessionmaker() as session:
                    status = await session.scalar(
                        select(Application.status).where(Application.id == application_id)
                    )
                    unsent = await session.scalar(
                        select(func.count())
                        .select_from(Message)
                        .where(
                            Message.application_id == application_id,
                            Message.status.in_(("created", "sending")),
                        )
                    )
                    sent = await session.scalar(
                        select(func.count())
                        .select_from(Message)
                        .where(Message.application_id == application_id)
                    )
                    # The certificate's notice is notify's last step for the application:
                    # intake may mark it delivered before notify has read the certificate, and
                    # that notice's work would otherwise fall into the next application's window.
                    last_notice = await session.scalar(
                        select(func.count())
                        .select_from(Notification)
                        .where(
                            Notification.application_id == application_id,
                            Notification.kind == NotificationKind.CERTIFICATE_ISSUED,
                        )
                    )
                return (
                    status == "delivered" and unsent == 0 and (sent or 0) > 0 and bool(last_notice)
                )

            await eventually(done, timeout_s=60)

        # One application first: copies learnt, connections made, caches filled.
        await finished(await apply())
        for _ in range(APPLICATIONS):
            await api.post(
                "/api/v1/subscriptions",
                json={"results": dict.fromkeys(template_ids, "accept")},
                headers=headers,
            )
        ids: list[str] = []
        start = await _database_now(database)
        with work.measure() as measured:
            for _ in range(APPLICATIONS):
                application_id = await submit()
                await finished(application_id)
                ids.append(application_id)
        end = await _database_now(database)
        written, handled = await work.events_between(database, start=start, end=end)
        async with database.sessionmaker() as session:
            notifications = await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.application_id.in_(ids))
            )

    total = ServiceWork()
    for w in measured.values():
        total.statements += w.statements
        total.write_transactions += w.write_transactions
    # The application's chain of events; notify's delivery reports (one per message sent) are
    # bounded by the notifications' budget and counted against it.
    receipts = sum(n for t, n in written.items() if t.startswith(NOTIFY_EVENTS))
    chain = sum(written.values()) - receipts
    # The gateway's requests are the citizen's; the others' are calls between services.
    calls = sum(w.requests_answered for n, w in measured.items() if n != "gateway")
    calls -= APPLICATIONS  # the gateway's one call to intake per submission is the citizen's
    per = APPLICATIONS
    report = "\n".join(
        [
            PlatformWork.report(measured, per=per),
            "events written: "
            + ", ".join(f"{t} {n / per:.1f}" for t, n in sorted(written.items())),
            "events handled: "
            + ", ".join(f"{t} {n / per:.1f}" for t, n in sorted(handled.items())),
        ]
    )
    print(report)
    figures = {
        "statements": total.statements / per,
        "write transactions": total.write_transactions / per,
        "events written": chain / per,
        "delivery reports": receipts / per,
        "events handled": sum(handled.values()) / per,
        "calls between services": calls / per,
        "notifications": (notifications or 0) / per,
    }
    print(figures)
    # Every statement on the path is taken from SQLAlchemy's statement cache after its first
    # use: one it cannot cache is compiled on every application (a quarter of intake's CPU
    # once, when its one-statement writes were built with a VALUES list).
    uncacheable = [
        f"{name}: {kind}"
        for name, w in measured.items()
        for kind in w.uncached
        if "NO_CACHE_KEY" in kind or "CACHING_DISABLED" in kind
    ]
    assert uncacheable == [], report
    assert figures["notifications"] <= NOTIFICATIONS, report
    assert figures["delivery reports"] <= figures["notifications"], report
    assert figures["statements"] <= STATEMENTS, report
    assert figures["write transactions"] <= WRITE_TRANSACTIONS, report
    assert figures["events written"] <= EVENTS_WRITTEN, report
    assert figures["events handled"] <= EVENTS_HANDLED, report
    assert figures["calls between services"] <= CALLS_BETWEEN_SERVICES, report
