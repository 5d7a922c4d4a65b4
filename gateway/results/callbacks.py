"""Where webhooks may go: `callback_url` parsed, IDNA-normalised and resolved, and public addresses only."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.contract.errors import InvalidRequest
from gateway.contract.parsing import control_character_in
from gateway.results.addresses import Resolver, internal, literal_address, local_name, resolve

Resolve = Resolver
system_resolve = resolve


def normalised_host(raw: str) -> str:
    """The host as DNS sees it: IDNA-encoded (so `127。0。0。1` is `127.0.0.1`), lower case, no final dot."""
    try:
        ascii_host = raw.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidRequest(
            "`callback_url` has a host name that is not valid.", field="callback_url"
        ) from exc
    if not ascii_host.isprintable() or " " in ascii_host:
        raise InvalidRequest("`callback_url` has a host name that is not valid.", field="callback_url")
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
    if any(char.isspace() for char in url) or control_character_in(url) is not None:
        # a CR/LF would be taken and paid for, then fail every delivery (no request can carry it)
        raise InvalidRequest(
            "`callback_url` must not hold white space or control characters.", field="callback_url"
        )
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


async def check(url: str, *, allow_private: bool, resolve: Resolver = resolve) -> Target:
    """400 unless `url` is http(s) to a public address; a name is resolved and every address checked.

    A name that does not resolve now is let through (DNS may be briefly down); each delivery resolves
    it again and checks again, so a name that later resolves inside the network is still refused.
    """
    host = parse(url)
    if allow_private:
        return Target(url, host, ())
    if local_name(host):
        raise _refused("a local host")
    address = literal_address(host)
    if address is not None:
        if internal(address):
            raise _refused("a loopback or private address")
        return Target(url, host, (str(address),))
    addresses = await resolve(host)
    for found in addresses:
        if internal(found):
            raise _refused(f"a name that resolves to a loopback or private address ({found})")
    return Target(url, host, tuple(str(found) for found in addresses))
