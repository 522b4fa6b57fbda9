"""App factory of the gateway service."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import (
    clients,
    contract,
    passwords,
    ratelimit,
    recipients,
    repository,
    sessions,
)
from gateway.api import (
    applications,
    auth,
    catalogue,
    deps,
    home,
    me,
    messages,
    ops,
    passthrough,
    staff,
    wallet,
)
from gateway.console import mount_console
from gateway.json_depth import JsonDepthLimit
from gateway.models import metadata
from gateway.protection import BodyLimit, SecurityHeaders
from gateway.sessions import client_tokens
from gateway.upstream import Upstreams
from wangban.app import PeriodicJob, ServiceSpec, create_service_app
from wangban.auth import InternalTokens
from wangban.crypto import BlindIndex, FieldCipher
from wangban.settings import Settings


async def purge_rate_counters(session: AsyncSession, settings: Settings) -> None:
    await ratelimit.purge(session, now=deps.utcnow())


async def purge_ended_logins(session: AsyncSession, settings: Settings) -> None:
    """Ended families whose access tokens have all expired; staff-login failure counts
    forgotten by the throttle policy."""
    now = deps.utcnow()
    await sessions.purge(session, now=now)
    forget = timedelta(seconds=passwords.ThrottlePolicy().forget_after_s)
    await repository.purge_login_throttles(session, idle_since=now - forget)


def configure(app: FastAPI, settings: Settings) -> None:
    """The gateway's clients and its public-door protection."""
    app.state.client_tokens = client_tokens(settings)
    app.state.trusted_proxies = ratelimit.TrustedProxies(settings.trusted_proxies)
    app.state.upstreams = Upstreams(settings)
    app.state.identity_verifier = clients.identity_verifier(settings)
    app.state.cipher = FieldCipher.from_settings(settings)
    app.state.blind_index = BlindIndex.from_settings(settings)
    # The gateway's own identity toward notify (openids after a login) and what became of it.
    app.state.service_tokens = InternalTokens.from_settings(settings)
    app.state.binding_reports = recipients.reports_counter(app.state.metrics)
    contract.describe_pass_through(
        app, passthrough.PASS_THROUGH, forwarding_query=passthrough.FORWARDING_QUERY
    )
    # Inside BodyLimit (added later, so outside): the body it reads whole is already bounded.
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.gateway_max_body_bytes,
        upload_max_bytes=settings.upload_max_bytes + 64 * 1024,
    )
    if settings.gateway_console_dir is not None:
        mount_console(app, settings.gateway_console_dir)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.gateway_cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
        expose_headers=["X-Request-Id", "Retry-After"],
        max_age=600,
    )


SPEC = ServiceSpec(
    name="gateway",
    title="Wangban gateway",
    description=(
        "The mini-program and staff-console API: the platform's only public door (粤省事-style)."
    ),
    package="gateway",
    metadata=metadata,
    routers=(
        auth.router,
        catalogue.router,
        wallet.router,
        home.router,
        me.router,
        applications.router,
        messages.router,
        staff.router,
        ops.router,
        ops.stats_router,
    ),
    shutdowns=(clients.close,),
    periodic=(
        PeriodicJob(name="rate-counters", interval_s=3600, run=purge_rate_counters),
        PeriodicJob(name="ended-logins", interval_s=3600, run=purge_ended_logins),
    ),
    extensions=(configure,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
