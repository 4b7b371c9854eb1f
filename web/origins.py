"""Cross-site requests: a browser may change state through the API only from this site or CORS_ORIGINS.

A page elsewhere can post a form here without CORS (`mode: "no-cors"`), so the browser's own
`Sec-Fetch-Site` and `Origin` headers are checked; curl and scripts send neither and pass.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from web.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FROM_HERE = frozenset({"same-origin", "none"})  # "none": typed into the address bar, a bookmark


def init_app(app: Flask) -> None:
    """Refuse cross-site state changes; answer CORS only for the origins listed in CORS_ORIGINS."""
    app.before_request(refuse_cross_site)
    app.after_request(allow_listed)


def listed() -> set[str]:
    """Return the origins CORS_ORIGINS lets in."""
    return {o.strip().rstrip("/") for o in current_app.config["CORS_ORIGINS"].split(",") if o.strip()}


def refuse_cross_site() -> None:
    """Raise 403 for an API call that changes state and comes from another site's page."""
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    here = request.host_url.rstrip("/")
    if site in FROM_HERE or (site is None and origin in (None, here)) or (origin and origin in listed()):
        return  # the browser says it is this site; or an older browser's Origin does; or no browser at all
    raise ApiError(403, "cross_site_request",
                   f"A page on {origin or 'another site'} may not change jobs here; set CORS_ORIGINS to allow it.")


def allow_listed(response: Response) -> Response:
    """Add CORS headers for a listed origin (and answer its preflight)."""
    origin = request.headers.get("Origin")
    if origin and request.path.startswith("/api/") and origin.rstrip("/") in listed():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
            response.headers["Access-Control-Allow-Headers"] = "Authorization"
    return response
