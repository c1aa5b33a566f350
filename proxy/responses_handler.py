"""`/v1/responses`: the Responses API in, any provider of the chain out.

`POST` goes through the same routing, fallback and rendering as the other generation endpoints
(client format RESPONSES). What the request declared that flat function calling cannot express
(namespaced and custom tools) is put back by the Responses rendering, streamed or whole, which
sees the request.

`GET` is Codex's attempt to open its WebSocket transport. Codex falls back to HTTP at once only
when the handshake is answered `426 Upgrade Required` (anything else costs it a round of retries
first), so that is the answer, with an OpenAI-shaped error body and without upgrading.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.client_dialects import RESPONSES
from proxy.handlers import generate


async def create_response(request: web.Request) -> web.StreamResponse:
    return await generate(request, RESPONSES)


async def responses_websocket(request: web.Request) -> web.Response:
    upgrade = request.headers.get("upgrade", "").lower() == "websocket"
    status = 426 if upgrade else 405
    message = (
        "llmproxy serves the Responses API over HTTP only: POST /v1/responses"
        if upgrade
        else "use POST /v1/responses"
    )
    code = "websocket_not_supported" if upgrade else None
    body = RESPONSES.error_body(status, message, code=code)
    headers = {"allow": "POST"}
    if upgrade:
        headers["connection"] = "close"
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )
