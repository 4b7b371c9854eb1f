"""Who is calling: the API key's name when keys are on, else the client's address.

Limits (rate, jobs in flight) and job ownership key on this. The accounts code sets
`g.key_name` (and optionally `g.key_limits`, a key's own overrides) before a view runs.
"""

from __future__ import annotations

from typing import Any

from flask import g, request


def current() -> str:
    """Return the caller's identity: 'key:<name>' when signed in with an API key, else 'ip:<address>'."""
    name = g.get("key_name")
    return f"key:{name}" if name else f"ip:{request.remote_addr or 'unknown'}"


def overrides() -> dict[str, Any]:
    """Return the signed-in key's own limits (empty when none or when keys are off)."""
    return dict(g.get("key_limits") or {})
