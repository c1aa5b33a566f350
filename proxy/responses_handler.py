"""`/v1/responses`: the Responses API in, any provider of the chain out.

`POST` goes through the same routing, fallback and rendering as the other generation endpoints
(client format RESPONSES). What the request declared that flat function calling cannot express
(namespaced and custom tools) is put back into non-streaming answers here; streams get it from
the RESPONSES stream encoder, which sees the request too.

`GET` is Codex's attempt to open its WebSocket transport. Codex falls back to HTTP at once only
when the handshake is answered `426 Upgrade Required` (anything else costs it a round of retries
first), so that is the answer, with an OpenAI-shaped error body and without upgrading.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.client_dialects import RESPONSES
from proxy.handlers import _generate
from proxy.translate.responses_tools import ToolIndex, restore_output


async def create_response(request: web.Request) -> web.StreamResponse:
    response = await _generate(request, RESPONSES)
    if type(response) is not web.Response or response.status != 200:
        return response  # streams and errors are complete as they are
    raw = response.body
    if not isinstance(raw, bytes | bytearray):
        return response
    index = ToolIndex.of(orjson.loads(await request.read()))
    if index.special:
        answer = orjson.loads(raw)
        if isinstance(answer, dict):
            response.body = orjson.dumps(restore_output(answer, index))
    return response


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
