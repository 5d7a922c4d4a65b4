"""Which hosts the gateway refuses to reach on others' behalf: loopback, private, link-local, CGNAT, metadata.

One place for every outbound URL a client or an upstream chose: webhook callbacks and result
downloads. A host is judged by every address it resolves to; names that only ever mean this
machine or its site (`localhost`, `*.internal` …) are refused without asking DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import anyio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NAMES = ("localhost",)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")

# Beyond what `ipaddress` calls private: carrier-grade NAT (shared address space, where some clouds
# put their metadata service, e.g. 100.100.100.200), the IETF protocol block (192.0.0.192 is one
# cloud's metadata address) and the benchmarking range.
EXTRA_INTERNAL = tuple(
    ipaddress.ip_network(network) for network in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str], Awaitable[list[IPAddress]]]
"""A host name → the addresses it resolves to (empty when it does not)."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is where it really leads."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def internal(address: IPAddress) -> bool:
    """Whether an address leads inside: loopback, private, link-local (metadata), CGNAT, reserved,
    multicast, unspecified — also when wrapped in an IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        return internal(inner)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or any(address in network for network in EXTRA_INTERNAL if network.version == address.version)
    )


def local_name(host: str) -> bool:
    """A name that means this machine or its site whatever DNS says."""
    host = host.lower().rstrip(".")
    return host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including IPv4's legacy forms (127.1, 0x7f000001, 2130706433)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):  # ValueError: a NUL in the host (found by the property tests)
        return None


async def resolve(host: str) -> list[IPAddress]:
    """Every address the system resolver gives for a host name (empty when it gives none)."""
    try:
        infos = await anyio.getaddrinfo(host, None)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def internal_host(host: str, resolver: Resolver = resolve) -> str | None:
    """Why a host leads inside (a sentence), or None when every address it has is public.
    A name that does not resolve is not judged here: the request to it fails by itself."""
    if local_name(host):
        return f"{host} is a local name"
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await resolver(host)
    for address in addresses:
        if internal(address):
            return f"{host} leads to the internal address {address}"
    return None
