"""Fetch an image from a client-supplied URL without becoming an SSRF proxy.

Rules, checked for the first URL and again for every redirect target:

* only ``http`` and ``https``; no credentials in the URL;
* the host name is resolved once, and every address it resolves to must be public
  (not loopback, private, link-local, shared/CGNAT, multicast, reserved, unspecified,
  nor an IPv6 form embedding such an IPv4 address) unless ``allow_private=True``.
  Cloud metadata endpoints are refused even then;
* the TCP connection goes to the address that was vetted, never to a second lookup
  (a DNS-rebinding server cannot swap in 127.0.0.1 between check and use), while the
  ``Host`` header, TLS SNI and certificate check still use the host name from the URL.
  This is done with http.client connection subclasses whose ``connect()`` dials the
  pinned IP; http.client ignores proxy environment variables, so no proxy can re-resolve;
* redirects are followed by hand, at most ``max_redirects`` hops, GET only;
* connect and per-read timeouts plus an overall deadline;
* the body is streamed and reading stops as soon as it exceeds ``max_bytes``;
* the answer must be an image: a Content-Type of ``image/*`` (or a generic binary type
  or none) AND the first bytes must carry a raster image signature.

Every refusal raises :class:`FetchRefused` with the HTTP status the REST should answer:

====  ==========================================================================
400   malformed URL, scheme other than http/https, credentials, unresolvable host
403   the host resolves to a forbidden address (private, loopback, metadata...)
413   the image is larger than ``max_bytes``
415   the response is not an image (Content-Type or signature)
502   upstream failure: connection refused/reset, TLS error, HTTP error status,
      too many redirects, redirect without Location
504   upstream timeout (DNS lookup, connect, read or overall deadline)
====  ==========================================================================
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin

from .urlrules import (
    METADATA_HOSTNAMES,
    FetchRefused,
    Resolver,
    Target,
    forbidden_reason,
    parse_url,
)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_SNIFF_BYTES = 32
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_USER_AGENT = "imagescan-urlfetch/1"
_GENERIC_BINARY_TYPES = {"application/octet-stream", "binary/octet-stream", "application/binary"}


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    final_url: str
    content_type: str  # the server's image/* type, or the one the signature shows


def fetch_image(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    resolver: Resolver | None = None,
) -> FetchedImage:
    """GET an image by URL under the rules of this module; raises FetchRefused otherwise.

    ``timeout`` bounds the connection and each read; the whole fetch, redirects
    included, gets at most three times that. ``resolver(host, port) -> [ip, ...]``
    replaces DNS (tests, or a deployment's own resolver).
    """
    deadline = time.monotonic() + 3 * timeout
    resolve = _within_deadline(resolver or _resolve, timeout, deadline)
    current = url
    for _ in range(max_redirects + 1):
        target = parse_url(current)
        addresses = _vetted_addresses(target, allow_private, resolve)
        response, connection = _open(target, addresses, timeout, deadline)
        try:
            if response.status in _REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise FetchRefused(f"upstream redirect {response.status} without a Location", 502)
                current = urljoin(target.url, location.strip())
                continue
            if not 200 <= response.status < 300:
                raise FetchRefused(f"upstream answered HTTP {response.status}", 502)
            return _read_image(response, target.url, max_bytes, deadline)
        finally:
            connection.close()
    raise FetchRefused(f"more than {max_redirects} redirects", 502)


# -- URL and address checks -----------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


# getaddrinfo has no timeout of its own and cannot be interrupted: lookups run on these
# threads so that the fetch's deadline holds; a lookup that hangs keeps its thread (a few at
# most), never the request.
_RESOLVER_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")


def _within_deadline(resolve: Resolver, timeout: float, deadline: float) -> Resolver:
    def bounded(host: str, port: int) -> list[str]:
        budget = min(timeout, deadline - time.monotonic())
        if budget <= 0:
            raise FetchRefused("timed out fetching the URL", 504)
        lookup = _RESOLVER_THREADS.submit(resolve, host, port)
        try:
            return lookup.result(timeout=budget)
        except concurrent.futures.TimeoutError:
            lookup.cancel()
            raise FetchRefused(f"timed out resolving {host}", 504) from None
    return bounded


def _vetted_addresses(target: Target, allow_private: bool, resolve: Resolver) -> list[str]:
    """Every address of the host, refused as a whole if any one is forbidden."""
    if target.host.rstrip(".") in METADATA_HOSTNAMES:
        raise FetchRefused(f"{target.host} is a cloud metadata service", 403)
    try:
        addresses = [
            ipaddress.ip_address(address.split("%")[0]) for address in resolve(target.host, target.port)
        ]
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise FetchRefused(f"cannot resolve {target.host}: {exc}", 400) from None
    except OSError as exc:
        raise FetchRefused(f"cannot resolve {target.host}: {exc}", 502) from None
    if not addresses:
        raise FetchRefused(f"{target.host} has no address", 400)
    for address in addresses:
        problem = forbidden_reason(address, allow_private)
        if problem:
            # a name that resolves to both public and private addresses is refused as a whole
            raise FetchRefused(f"{target.host} resolves to {problem} address {address}", 403)
    return [str(address) for address in addresses]


# -- connections pinned to the vetted address -------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to ``pinned_ip`` while the Host header names the URL's host."""

    def __init__(self, host: str, port: int, pinned_ip: str, connect_timeout: float, read_timeout: float):
        super().__init__(host, port, timeout=connect_timeout)
        self._pinned_ip = pinned_ip
        self._read_timeout = read_timeout

    def _dial(self) -> socket.socket:
        sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        sock.settimeout(self._read_timeout)
        return sock

    def connect(self) -> None:
        self.sock = self._dial()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to ``pinned_ip``; SNI and certificate verification use the URL's host name."""

    default_port = 443  # so the Host header omits ":443"

    def __init__(self, host, port, pinned_ip, connect_timeout, read_timeout, context: ssl.SSLContext):
        super().__init__(host, port, pinned_ip, connect_timeout, read_timeout)
        self._context = context

    def connect(self) -> None:
        sock = self._dial()
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _tls_context() -> ssl.SSLContext:
    """The system CA store (honours SSL_CERT_FILE/SSL_CERT_DIR); certifi's when it is empty."""
    context = ssl.create_default_context()
    if context.cert_store_stats()["x509_ca"] == 0:
        try:
            import certifi
        except ImportError:
            return context
        context.load_verify_locations(cafile=certifi.where())
    return context


def _open(target: Target, addresses: list[str], timeout: float, deadline: float):
    """Connect to the first reachable vetted address and send the GET."""
    last_error: Exception | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused("timed out fetching the URL", 504)
        per_step = min(timeout, remaining)
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(
                target.host, target.port, address, per_step, per_step, _tls_context()
            )
        else:
            connection = _PinnedHTTPConnection(target.host, target.port, address, per_step, per_step)
        try:
            connection.request(
                "GET",
                target.request_path,
                headers={"User-Agent": _USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
            )
            return connection.getresponse(), connection
        except TimeoutError:
            connection.close()
            raise FetchRefused(f"timed out connecting to {target.host}", 504) from None
        except ssl.SSLError as exc:
            connection.close()
            raise FetchRefused(f"TLS failure with {target.host}: {exc.reason or exc}", 502) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            last_error = exc
    raise FetchRefused(f"cannot reach {target.host}: {last_error}", 502)


# -- the body ---------------------------------------------------------------------


def _read_image(
    response: http.client.HTTPResponse, url: str, max_bytes: int, deadline: float
) -> FetchedImage:
    declared_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if (
        declared_type
        and not declared_type.startswith("image/")
        and declared_type not in _GENERIC_BINARY_TYPES
    ):
        raise FetchRefused(f"the URL is not an image (Content-Type {declared_type})", 415)
    declared_length = response.getheader("Content-Length")
    if declared_length and declared_length.strip().isdigit() and int(declared_length) > max_bytes:
        raise FetchRefused(f"the image is larger than {max_bytes} bytes", 413)

    chunks: list[bytes] = []
    received = 0
    sniffed_type: str | None = None
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchRefused("timed out reading the image", 504)
            chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise FetchRefused(f"the image is larger than {max_bytes} bytes", 413)
            chunks.append(chunk)
            if sniffed_type is None and received >= _SNIFF_BYTES:
                sniffed_type = _require_image_signature(b"".join(chunks))
    except TimeoutError:
        raise FetchRefused("timed out reading the image", 504) from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchRefused(f"the upstream connection failed: {exc}", 502) from None
    data = b"".join(chunks)
    if sniffed_type is None:
        sniffed_type = _require_image_signature(data)
    content_type = declared_type if declared_type.startswith("image/") else sniffed_type
    return FetchedImage(data=data, final_url=url, content_type=content_type)


def _require_image_signature(head: bytes) -> str:
    image_type = image_signature(head)
    if image_type is None:
        raise FetchRefused("the URL's content is not a supported image", 415)
    return image_type


def image_signature(head: bytes) -> str | None:
    """The MIME type shown by the first bytes of a raster image, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "image/heif"
    return None
