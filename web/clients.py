"""Who is calling: the API key's name when keys are on, else the client's address.

Limits (rate, jobs in flight) and job ownership key on this. The accounts code sets
`g.key_name` (and optionally `g.key_limits`, a key's own overrides) before a view runs.

The address is the peer's, unless the peer is a proxy named in FORWARDED_ALLOW_IPS
(the nginx front in compose and `make dev`): then it is the last hop of X-Forwarded-For
that no trusted proxy added, so a client cannot pick its own identity by sending the header.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from flask import current_app, g, request

from imgjobs.config import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def current() -> str:
    """Return the caller's identity: 'key:<name>' when signed in with an API key, else 'ip:<address>'."""
    name = g.get("key_name")
    return f"key:{name}" if name else f"ip:{address()}"


def overrides() -> dict[str, Any]:
    """Return the signed-in key's own limits (empty when none or when keys are off)."""
    return dict(g.get("key_limits") or {})


def address() -> str:
    """Return the client's address, read through the trusted proxies in front of the web."""
    peer = request.remote_addr or "unknown"
    trusted = trusted_networks(current_app.config["FORWARDED_ALLOW_IPS"])
    return client_address(peer, request.headers.get("X-Forwarded-For", ""), trusted)


def client_address(peer: str, forwarded_for: str, trusted: tuple[Network, ...] | None) -> str:
    """Walk X-Forwarded-For from the right past trusted hops; `trusted` None means trust every peer.

    A header from an untrusted peer, or with a hop that is not an IP address, is ignored.
    """
    if not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not all(_parse(hop) for hop in hops):
        return peer
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


@lru_cache(maxsize=8)
def trusted_networks(setting: str) -> tuple[Network, ...] | None:
    """Parse FORWARDED_ALLOW_IPS ('*', or comma-separated addresses and networks); None trusts all."""
    items = [item.strip() for item in setting.split(",") if item.strip()]
    if "*" in items:
        return None
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ConfigError(f"FORWARDED_ALLOW_IPS={setting!r}: {exc}") from None


def _is_trusted(address: str, trusted: tuple[Network, ...] | None) -> bool:
    ip = _parse(address)
    return ip is not None and (trusted is None or any(ip in network for network in trusted))


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
