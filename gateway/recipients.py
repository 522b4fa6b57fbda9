"""Telling the notification service which WeChat openid an account logged in with.

The gateway is the only place an openid is learnt (WeChat's answer to a login code), and
notify needs it to send the account's subscription messages. After every successful WeChat
login (and development login) the gateway calls notify's
``PUT /internal/recipients/{subject}/wechat`` as itself (a ``service`` identity), after the
login's transaction has committed and its response has been sent: the call holds no
transaction or pooled connection, and the citizen never waits for it.

A failure is logged and counted (``wangban_gateway_wechat_binding_reports_total``), never the
login's failure: binding is idempotent in notify, so the next login simply reports again. The
call is bounded: the service client's retries (PUT is safe to repeat) within an overall
deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Literal

import httpx
from prometheus_client import Counter

from gateway.upstream import segment
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.observability import Metrics

log = logging.getLogger(__name__)

GATEWAY: Final = Identity(subject="gateway", kind="service", assurance=AssuranceLevel.WECHAT)
"""Who calls notify's internal route: the gateway itself, not the citizen."""
DEADLINE_S: Final = 10.0
"""The most one report may take, retries included."""

Outcome = Literal["bound", "failed"]


def reports_counter(metrics: Metrics) -> Counter:
    """``wangban_gateway_wechat_binding_reports_total{outcome}`` in the service's registry."""
    return Counter(
        "gateway_wechat_binding_reports_total",
        "Openids reported to the notification service after a login, by outcome",
        ["outcome"],
        namespace="wangban",
        registry=metrics.registry,
    )


async def report_wechat_binding(
    *,
    notify: httpx.AsyncClient,
    tokens: InternalTokens,
    subject: str,
    openid: str,
    reports: Counter | None = None,
    deadline_s: float = DEADLINE_S,
) -> Outcome:
    """Bind ``openid`` to account ``subject`` in notify; says how it went, never raises (a
    failed report is retried by the account's next login)."""
    token = tokens.issue(GATEWAY, issuer="gateway")
    outcome: Outcome = "failed"
    try:
        async with asyncio.timeout(deadline_s):
            answer = await notify.put(
                f"/internal/recipients/{segment(subject)}/wechat",
                json={"openid": openid},
                headers={"Authorization": f"Bearer {token}"},
            )
        if answer.status_code == 204:
            outcome = "bound"
        else:
            log.warning("notify refused the WeChat binding of %s: %d", subject, answer.status_code)
    except (httpx.HTTPError, TimeoutError) as exc:
        log.warning("notify did not take the WeChat binding of %s: %s", subject, type(exc).__name__)
    if reports is not None:
        reports.labels(outcome).inc()
    return outcome
