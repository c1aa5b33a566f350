"""The only way llmproxy builds HTML (the OAuth callback page): callers pass plain text, every
value is escaped, and the page ships a Content-Security-Policy that allows nothing but its own
inline style (pinned by hash), so even a missed escape could not run a script."""

from __future__ import annotations

import base64
import hashlib
import html

from aiohttp import web

_STYLE = "body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}"
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def escape(value: object) -> str:
    """Text safe in HTML content and in quoted attribute values."""
    return html.escape(str(value), quote=True)


def render_page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def html_response(title: str, *paragraphs: str, status: int = 200) -> web.Response:
    """A small page from plain text (never markup), with the restrictive headers."""
    return web.Response(
        text=render_page(title, *paragraphs),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )
