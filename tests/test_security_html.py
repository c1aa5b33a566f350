"""The HTML helper (for the OAuth callback page): every value escaped, a CSP that runs nothing."""

from __future__ import annotations

import base64
import hashlib
import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.security.html import CONTENT_SECURITY_POLICY, escape, html_response, render_page

ATTACKS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</title><script>alert(document.cookie)</script>",
    "javascript:alert(1)",
    "&lt;already&gt; & more",
]


def test_escape_neutralises_markup_and_quotes() -> None:
    for attack in ATTACKS:
        escaped = escape(attack)
        assert not set("<>\"'") & set(escaped)
    assert escape("a & b") == "a &amp; b"
    assert escape(42) == "42"


def test_page_has_no_markup_from_values() -> None:
    page = render_page(ATTACKS[3], *ATTACKS)
    assert page.count("<script") == 0 and page.count("<img") == 0
    assert page.count("<title>") == 1 and page.count("</title>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_csp_allows_only_the_pages_own_style() -> None:
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY  # falls back to default-src 'none'
    page = render_page("t")
    style = re.search(r"<style>(.*?)</style>", page)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY


async def test_served_page_carries_the_headers() -> None:
    async def page(request: web.Request) -> web.Response:
        return html_response("Sign-in failed", request.query.get("error", ""), status=400)

    app = web.Application()
    app.router.add_get("/callback", page)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/callback", params={"error": ATTACKS[0]})
        body = await response.text()
    assert response.status == 400
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in body and "&lt;script&gt;" in body
