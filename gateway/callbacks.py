"""Where webhooks may go: `callback_url` parsed, IDNA-normalised and resolved, and public addresses only."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio

from gateway.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str], Awaitable[list[str]]]
"""A host name's addresses as text; an empty list when it does not resolve."""

BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def system_resolve(host: str) -> list[str]:
    try:
        infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def private(address: Address) -> bool:
    """Anything but a public unicast address: loopback, private, carrier-grade NAT (100.64/10),
    link-local (cloud metadata at 169.254.169.254), documentation, multicast … and the IPv4 address
    an IPv6 one carries (::ffff:127.0.0.1, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and private(embedded):
            return True
    return not address.is_global or address.is_multicast


def literal_address(host: str) -> Address | None:
    """The address a host names literally, including IPv4's legacy forms (127.1, 0x7f000001, 2130706433)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


def normalised_host(raw: str) -> str:
    """The host as DNS sees it: IDNA-encoded (so `127。0。0。1` is `127.0.0.1`), lower case, no final dot."""
    try:
        ascii_host = raw.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidRequest(
            "`callback_url` has a host name that is not valid.", field="callback_url"
        ) from exc
    return ascii_host.lower().rstrip(".")


@dataclass(frozen=True)
class Target:
    """A checked callback URL: its normalised host and, for a name, the public addresses it resolved to."""

    url: str
    host: str
    addresses: tuple[str, ...]


def _refused(what: str) -> InvalidRequest:
    return InvalidRequest(f"`callback_url` may not point at {what}.", field="callback_url")


def parse(url: str) -> str:
    """The URL's normalised host, or 400 for anything but an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidRequest(f"`callback_url` is not a valid URL: {exc}.", field="callback_url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("`callback_url` must be an absolute http(s) URL.", field="callback_url")
    host = normalised_host(parts.hostname)
    if not host:
        raise InvalidRequest("`callback_url` must be an absolute http(s) URL.", field="callback_url")
    return host


async def check(url: str, *, allow_private: bool, resolve: Resolve = system_resolve) -> Target:
    """400 unless `url` is http(s) to a public address; a name is resolved and every address checked.

    A name that does not resolve now is let through (DNS may be briefly down); each delivery resolves
    it again and checks again, so a name that later resolves inside the network is still refused.
    """
    host = parse(url)
    if allow_private:
        return Target(url, host, ())
    if host == "localhost" or host.endswith(BLOCKED_SUFFIXES):
        raise _refused("a local host")
    address = literal_address(host)
    if address is not None:
        if private(address):
            raise _refused("a loopback or private address")
        return Target(url, host, (str(address),))
    addresses = await resolve(host)
    for text in addresses:
        if (found := literal_address(text.split("%")[0])) is None or private(found):
            raise _refused(f"a name that resolves to a loopback or private address ({text})")
    return Target(url, host, tuple(addresses))
