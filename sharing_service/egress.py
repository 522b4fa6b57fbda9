"""Where the sharing service may send a department's credential: the provider URL policy.

A provider's base URL is typed in by a data administrator, and the sharing service then POSTs
citizens' ID numbers and the department's bearer token to it. Pointed at the cloud's metadata
endpoint (``169.254.169.254``), at loopback or at another internal system, it would turn the
service into a way to reach what the network is meant to hide (SSRF). So:

* in production a base URL must be ``https``;
* its host must resolve only to public addresses — in production; elsewhere loopback and
  private addresses are allowed (local fakes of departments), link-local, unspecified and
  multicast never are — unless the host, or a network holding the address, is listed in
  ``WANGBAN_PROVIDER_ALLOWED_HOSTS`` (departments' systems on the government network);
* the rule is checked when a provider is registered *and* before every call, since the name
  may resolve elsewhere later; and lookups never follow redirects (``http_provider``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from wangban.settings import Environment, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UrlRefused(ValueError):
    """The URL breaks the policy; the message (Chinese) says why, for the administrator."""


def _address(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return address


def _never(address: IPAddress) -> bool:
    """Addresses no provider has, whatever the environment (metadata endpoints live here)."""
    return address.is_link_local or address.is_unspecified or address.is_multicast


def _internal(address: IPAddress) -> bool:
    return not address.is_global or _never(address)


@dataclass(frozen=True)
class ProviderUrlPolicy:
    require_https: bool
    public_only: bool
    """True: loopback and private addresses are refused too (production)."""
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderUrlPolicy:
        production = settings.env is Environment.PRODUCTION
        return cls.build(
            require_https=production,
            public_only=production,
            allowed=settings.provider_allowed_hosts,
        )

    @classmethod
    def build(
        cls, *, require_https: bool, public_only: bool, allowed: Iterable[str] = ()
    ) -> ProviderUrlPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allowed:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(require_https, public_only, frozenset(hosts), tuple(networks))

    def _refused(self, address: IPAddress, *, host_listed: bool) -> bool:
        if any(address in network for network in self.allowed_networks):
            return False
        if _never(address):
            return True
        return self.public_only and _internal(address) and not host_listed

    async def check(self, url: str) -> None:
        """Raise :class:`UrlRefused` unless ``url`` may receive lookups (resolves the host)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UrlRefused("接口地址必须是 http(s) 地址")
        if self.require_https and parts.scheme != "https":
            raise UrlRefused("生产环境中数据提供方的接口地址必须使用 https")
        host = parts.hostname.lower().rstrip(".")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UrlRefused("接口地址的端口无效") from None
        addresses = await resolve(host, port)
        if not addresses:
            raise UrlRefused(f"无法解析接口地址的主机名 {host}")
        listed = host in self.allowed_hosts
        bad = sorted({str(a) for a in addresses if self._refused(a, host_listed=listed)})
        if bad:
            raise UrlRefused(
                f"接口地址 {host} 指向内部地址（{'、'.join(bad)}），"
                "不在 WANGBAN_PROVIDER_ALLOWED_HOSTS 允许的范围内"
            )


LOCAL_POLICY = ProviderUrlPolicy.build(require_https=False, public_only=False)
"""Outside production: http and loopback/private addresses allowed (local fakes of
departments), link-local, unspecified and multicast refused."""


async def resolve(host: str, port: int) -> Sequence[IPAddress]:
    """Every address ``host`` resolves to (an address literal resolves to itself). All of
    them are checked: a name with one public and one internal address is refused."""
    literal = _address(host.strip("[]"))
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found = [_address(str(info[4][0])) for info in infos]
    return [a for a in found if a is not None]
