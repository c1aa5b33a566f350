"""Refusals as JSON in the client's own dialect, never an HTML page."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from proxy.client_dialects import ANTHROPIC, OPENAI, ClientDialect


def dialect_for(request: web.BaseRequest) -> ClientDialect:
    """Anthropic's shape for its endpoints, OpenAI's for everything else (the management API
    included: `{"error": {"type", "message", ...}}` is what generic clients expect)."""
    return ANTHROPIC if request.path.startswith("/v1/messages") else OPENAI


def error_response(
    request: web.BaseRequest,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = dialect_for(request).error_body(status, message, code=code, param=param)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=headers)
