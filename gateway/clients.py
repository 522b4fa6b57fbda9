"""The gateway's clients of the systems behind it: the services, WeChat, the real-name
verification provider. Built once per app and kept in ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.identity_provider import HttpIdentityVerifier, IdentityVerifier
from gateway.models import wechat_access_token
from gateway.upstream import Upstreams
from gateway.wechat import WeChatAuth
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.settings import ConfigurationError, Settings
from wangban.wechat import PostgresTokenStore

TOKEN_CONTEXT = "gateway.wechat_token"


def identity_verifier(settings: Settings) -> IdentityVerifier:
    """The register's verification service, or in local and test runs the sandbox register
    (production refuses to start without a URL)."""
    if settings.identity_provider_url:
        return HttpIdentityVerifier(
            base_url=settings.identity_provider_url,
            token=settings.identity_provider_token.get_secret_value(),
            timeout_s=settings.http_timeout_s,
        )
    # Imported only here, when configured: the sandbox is a separate distribution that the
    # production image does not contain.
    try:
        from sandbox.register import SandboxIdentityVerifier
    except ImportError as exc:
        raise ConfigurationError(
            "WANGBAN_IDENTITY_PROVIDER_URL is not set and the sandbox register is not installed: "
            "set WANGBAN_IDENTITY_PROVIDER_URL, or install the sandbox (pip install -e ./sandbox; "
            "./dev does)"
        ) from exc
    return SandboxIdentityVerifier()


def wechat_auth(app: FastAPI) -> WeChatAuth:
    """The WeChat client, made on first use: its token store needs the database the app opens
    when it starts."""
    state = app.state
    if getattr(state, "wechat", None) is None:
        settings: Settings = state.settings
        database: Database = state.database
        cipher: FieldCipher = state.cipher
        state.wechat = WeChatAuth(
            base_url=settings.wechat_api_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_app_secret.get_secret_value(),
            token_store=PostgresTokenStore(
                database,
                table=wechat_access_token,
                appid=settings.wechat_appid,
                cipher=cipher,
                context=TOKEN_CONTEXT,
            ),
            timeout_s=settings.http_timeout_s,
        )
    wechat: WeChatAuth = state.wechat
    return wechat


async def close(app: FastAPI) -> None:
    await app.state.upstreams.close()
    await app.state.identity_verifier.close()
    wechat = getattr(app.state, "wechat", None)
    if wechat is not None:
        await wechat.close()


__all__ = ["Upstreams", "close", "identity_verifier", "wechat_auth"]
