"""Wire-level pieces both simulated dialects share: SSE framing, error bodies, stable ids.

Error bodies follow what the real services send: OpenAI's `{"error": {message, type, param,
code}}` and Anthropic's `{"type": "error", "error": {type, message}, "request_id"}`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from proxy.types import JSONObject, ProviderFormat

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def sse_data(payload: Any) -> bytes:
    """One OpenAI-style SSE frame: a bare `data:` line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_event(name: str, payload: Any) -> bytes:
    """One Anthropic-style SSE frame: a named event with a JSON `data:` line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def digest(*parts: object) -> str:
    """A stable hex digest, so ids depend only on the request (replies stay predictable)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        elif isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(orjson.dumps(part, option=orjson.OPT_SORT_KEYS))
        h.update(b"\0")
    return h.hexdigest()


def openai_error(
    message: str, type_: str | None, *, param: str | None = None, code: str | None = None
) -> JSONObject:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(type_: str, message: str) -> JSONObject:
    return {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": "req_sim" + digest(type_, message)[:20],
    }


_ANTHROPIC_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}

_OPENAI_TYPES: dict[int, tuple[str | None, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request", None),
    401: (
        "invalid_request_error",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    ),
    403: ("invalid_request_error", "You are not allowed to access this resource.", None),
    404: ("invalid_request_error", "The requested resource does not exist.", "not_found"),
    429: (
        "requests",
        "Rate limit reached for requests. Please try again in 1s.",
        "rate_limit_exceeded",
    ),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    503: ("server_error", "The server is overloaded or not ready yet.", None),
}


def default_error_body(fmt: ProviderFormat, status: int) -> JSONObject:
    """The body a real provider of `fmt` sends with `status` when nothing more specific applies."""
    if fmt is ProviderFormat.ANTHROPIC:
        type_, message = _ANTHROPIC_TYPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        return anthropic_error(type_, message)
    fallback = (
        "server_error" if status >= 500 else "invalid_request_error",
        f"HTTP {status}",
        None,
    )
    otype, omessage, code = _OPENAI_TYPES.get(status, fallback)
    return openai_error(omessage, otype, code=code)
