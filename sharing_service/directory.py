"""The providers behind the registry's datasets, built once per process.

A provider object carries state that must outlive a request — its HTTP connection pool and
its circuit breaker — so the directory keeps one per registered provider and rebuilds it only
when its registration changes (new URL, credential or timeouts).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import configuration
from sharing_service.egress import LOCAL_POLICY, ProviderUrlPolicy
from sharing_service.http_provider import HttpProvider, ProviderMetrics
from sharing_service.models import Dataset, Provider
from sharing_service.providers import DataProvider, ProviderUnavailable
from wangban.crypto import FieldCipher


def token_context(code: str) -> str:
    return f"sharing.provider_token:{code}"


class ProviderDirectory:
    def __init__(
        self,
        *,
        cipher: FieldCipher,
        metrics: ProviderMetrics | None = None,
        sandbox: DataProvider | None = None,
        allow_sandbox: bool = True,
        url_policy: ProviderUrlPolicy = LOCAL_POLICY,
    ) -> None:
        self._cipher = cipher
        self._url_policy = url_policy
        self._allow_sandbox = allow_sandbox
        self._metrics = metrics
        self._sandbox = sandbox
        self._built: dict[str, tuple[tuple[object, ...], DataProvider]] = {}

    def _sandbox_provider(self) -> DataProvider:
        if self._sandbox is None:
            # Imported on first use: a deployment with only real providers never builds the
            # synthetic population, and the production image does not even contain it.
            try:
                from sandbox.provider import SandboxProvider
            except ImportError as exc:
                # A registration still on the sandbox without it installed: unavailable (manual
                # handling), as a department that does not answer.
                raise ProviderUnavailable(
                    "the sandbox provider is not installed (pip install -e ./sandbox)"
                ) from exc
            self._sandbox = SandboxProvider()
        return self._sandbox

    async def provider_for(
        self, session: AsyncSession, dataset: Dataset
    ) -> tuple[str, DataProvider]:
        row = await configuration.provider(session, dataset.provider_code)
        if row is None or not row.enabled:
            raise ProviderUnavailable(f"provider {dataset.provider_code} is not enabled")
        if row.kind == "sandbox":
            if not self._allow_sandbox:
                # Synthetic people must never answer for real ones: in production a dataset
                # still on the sandbox is unavailable (manual handling), not "no record".
                raise ProviderUnavailable(f"provider {row.code} is the sandbox, refused here")
            return row.name, self._sandbox_provider()
        return row.name, await self._http(row)

    async def _http(self, row: Provider) -> DataProvider:
        fingerprint = (row.base_url, row.token_enc, row.connect_timeout_s, row.read_timeout_s)
        built = self._built.get(row.code)
        if built is not None and built[0] == fingerprint:
            return built[1]
        if not row.base_url or not row.token_enc:
            raise ProviderUnavailable(f"provider {row.code} has no URL or credential")
        provider = HttpProvider(
            name=row.code,
            base_url=row.base_url,
            token=self._cipher.decrypt(row.token_enc, context=token_context(row.code)),
            connect_timeout_s=row.connect_timeout_s,
            read_timeout_s=row.read_timeout_s,
            consumer="sharing",
            metrics=self._metrics,
            url_policy=self._url_policy,
        )
        if built is not None:
            await built[1].close()
        self._built[row.code] = (fingerprint, provider)
        return provider

    async def close(self) -> None:
        for _, provider in self._built.values():
            await provider.close()
        self._built.clear()
        if self._sandbox is not None:
            await self._sandbox.close()
