"""llmproxy's own rejections (a bad key, a body too large, a rate limit...) as JSON error
responses in the client's own dialect, never an HTML page. ("Refusal" is the model's word:
`types.RefusalDelta`.)"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from proxy.client_dialects import ANTHROPIC, OPENAI, RESPONSES, ClientDialect


def dialect_for(request: web.BaseRequest) -> ClientDialect:
    """The client API of the endpoint asked: Anthropic's for its endpoints, the Responses API's
    for `/v1/responses`, OpenAI's for everything else (the management API included:
    `{"error": {"type", "message", ...}}` is what generic clients expect)."""
    if request.path.startswith("/v1/messages"):
        return ANTHROPIC
    return RESPONSES if request.path == "/v1/responses" else OPENAI


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
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
