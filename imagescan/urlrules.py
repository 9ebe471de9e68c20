"""Which URLs a client may have fetched, and which addresses they may reach (see urlfetch).

Refusals raise :class:`FetchRefused` with the HTTP status the REST should answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

MAX_URL_LENGTH = 4096

# Instance-metadata services: always refused, even with allow_private.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_HOSTNAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Resolver = Callable[[str, int], list[str]]


class FetchRefused(Exception):
    """The URL was not fetched, or its answer was refused; ``status`` is for the REST answer."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    request_path: str
    url: str


def parse_url(url: str) -> Target:
    if not isinstance(url, str) or not url.strip():
        raise FetchRefused("the URL is empty", 400)
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise FetchRefused(f"the URL is longer than {MAX_URL_LENGTH} characters", 400)
    if any(ord(character) < 0x21 for character in url):
        raise FetchRefused("the URL contains spaces or control characters", 400)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"malformed URL: {exc}", 400) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be scanned, not {scheme or 'a relative URL'}", 400)
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("credentials in the URL are not accepted", 400)
    if not parts.hostname:
        raise FetchRefused("the URL has no host", 400)
    try:
        host = (
            parts.hostname.encode("idna").decode("ascii")
            if not _is_ip_literal(parts.hostname)
            else parts.hostname
        )
    except UnicodeError:
        raise FetchRefused("the URL's host name is not valid", 400) from None
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(scheme, host.lower(), port or (443 if scheme == "https" else 80), path, url)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def forbidden_reason(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool = False
) -> str | None:
    """Why a client-supplied URL may not reach this address, or None when it may."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_multicast:
        return "a multicast"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return forbidden_reason(embedded, allow_private)
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_private:
        return "a private"
    if address.is_reserved:
        return "a reserved"
    if isinstance(address, ipaddress.IPv6Address) and address.teredo:
        return "a Teredo tunnel"
    if not address.is_global:
        return "a non-public"
    return None


def _embedded_ipv4(address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form (mapped, 6to4, NAT64) would reach."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
