"""The browser page at `/`, built on the public API, and the security headers every response carries."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template

bp = Blueprint("page", __name__)

#: Only this origin's scripts, styles, images and API; images also from the page's own object URLs
#: (previews of files picked but not uploaded). No inline scripts or styles, no foreign origins.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@bp.get("/")
def index() -> str:
    """Serve the page."""
    return render_template("index.html")


def secure(response: Response) -> Response:
    """Add the security headers to a response that does not set its own."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """Serve the page and send the security headers with every response."""
    app.register_blueprint(bp)
    app.after_request(secure)
