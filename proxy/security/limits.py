"""Hostile input: every request body is bounded in size, time, nesting and encoding before any
handler sees it, and each violation gets a clear 4xx in the client's dialect.

The parsed body is left on the request under `BODY` so later layers (rate limits by tokens)
do not parse it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from proxy.logging_setup import Redactor, log_body
from proxy.security.rejections import error_response
from proxy.security.settings import RequestLimits
from proxy.serving import parser_reason

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY = web.RequestKey("body", object)
"""The request's parsed JSON body (None for an empty management request)."""
BODY_SIZE = web.RequestKey("body_size", int)
LARGE_BODY = 256 * 1024
"""From this size on, work on a body happens off the event loop (`off_loop`)."""
T = TypeVar("T")

log = logging.getLogger("llmproxy.requests")

_JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})


# Everything but the characters that matter for nesting: quotes and brackets.
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"{}[]'))
_MARK = b"\x00"


def exceeds_depth(raw: bytes, limit: int) -> bool:
    """Whether the JSON text `raw` nests objects/arrays more than `limit` deep (`{}` is depth 1).

    Works on the bytes with C-speed passes only (this runs on every request): escaped
    backslashes and quotes are removed, then everything but quotes and brackets, then strings;
    each pass that deletes the innermost `{}`/`[]` pairs peels one level. Malformed text is
    left to the parser.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    structure = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    structure = b"".join(structure.split(b'"')[::2])  # drop what strings held
    if not structure:  # brackets inside strings only
        return False
    for _ in range(limit):
        # Mark first, delete after: `[{}]` must lose one level per pass, not cascade to ``.
        peeled = structure.replace(b"{}", _MARK).replace(b"[]", _MARK).translate(None, _MARK)
        if not peeled or len(peeled) == len(structure):
            return False
        structure = peeled
    return True


def limits_middleware(limits: RequestLimits, redactor: Redactor) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path, method = request.path, request.method  # cached properties: each a lookup
        api = path.startswith("/v1/")
        management = path.startswith("/v0/management/")
        unrouted = request.match_info.http_exception is not None  # 404/405 answer as such
        if method not in _JSON_METHODS or not (api or management) or unrouted:
            return await handler(request)
        length = request.content_length
        if length is not None and length > limits.max_body_bytes:
            return await _too_large(request, limits)
        try:
            if request.content.is_eof():  # it came with the head: no wait, so no timer
                raw = await request.read()
            else:
                async with asyncio.timeout(limits.body_read_timeout):
                    raw = await request.read()
        except TimeoutError:
            return await _closing(
                request,
                error_response(
                    request,
                    408,
                    f"request body not received within {limits.body_read_timeout:g}s",
                    code="request_timeout",
                ),
            )
        except web.HTTPRequestEntityTooLarge:
            return await _too_large(request, limits)
        except (web.RequestPayloadError, HttpProcessingError) as exc:
            # broken chunks, a body that does not decompress (aiohttp's C parser raises the
            # first, its pure-Python one the second)
            return await _closing(
                request,
                error_response(
                    request,
                    400,
                    f"malformed request body: {parser_reason(str(exc))}",
                    code="malformed_request",
                ),
            )
        if not raw.strip() and management:
            request[BODY] = None
            return await handler(request)
        request[BODY_SIZE] = len(raw)
        body, problem = await off_loop(request, _parse, raw, limits.max_json_depth)
        if problem is not None:
            return error_response(request, 400, problem, code="invalid_json")
        request[BODY] = body
        debug = log.isEnabledFor(logging.DEBUG)  # else the labels are not even formatted
        if debug:
            log_body(log, f"{method} {path} request body", raw, redactor)
        response = await handler(request)
        if debug and isinstance(response, web.Response) and isinstance(response.body, bytes):
            log_body(log, f"{path} response body ({response.status})", response.body, redactor)
        return response

    return middleware


async def _too_large(request: web.Request, limits: RequestLimits) -> web.StreamResponse:
    return await _closing(
        request,
        error_response(
            request,
            413,
            f"request body exceeds {limits.max_body_bytes} bytes",
            code="request_too_large",
        ),
    )


async def _closing(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send `response`, then close the connection: the rest of the body is never read, and
    aiohttp would otherwise linger up to 10 s draining it for a slow or oversized client."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # flushes what was written, then closes
    return response


WALKED_BYTES = 64 * 1024
"""Up to this size the depth is checked on the parsed body (orjson refuses more than 1024
levels by itself): a walk costs in proportion to the values the body holds, which a 30 KB
Claude Code request has a few thousand of, while `exceeds_depth`'s passes, and even counting
its brackets, cost in proportion to every byte (counting two brackets alone was 6% of that
request's instructions). Larger bodies are judged on their text before they are parsed."""


def _parse(raw: bytes, depth: int) -> tuple[object, str | None]:
    """The parsed body, or why it cannot be parsed."""
    too_deep = f"request body nests deeper than {depth} levels"
    walked = len(raw) <= WALKED_BYTES
    if not walked and exceeds_depth(raw, depth):
        return None, too_deep
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # A small body that fails to parse is judged as a large one would be: depth first
        # (orjson's own limit, 1024 levels, would otherwise name no limit).
        if walked and exceeds_depth(raw, depth):
            return None, too_deep
        return None, _json_problem(raw, exc)
    # Each level takes an opening and a closing bracket: shorter text cannot nest too deep.
    if walked and len(raw) > 2 * depth and nests_deeper(body, depth):
        return None, too_deep
    return body, None


def nests_deeper(value: object, limit: int) -> bool:
    """Whether a parsed JSON value nests objects/arrays more than `limit` deep (`{}` is depth
    1), as `exceeds_depth` judges its text."""
    # Level by level, testing exact types (orjson builds plain dicts and lists): three times
    # faster than a stack of (node, level) pairs and `isinstance` with a union; one
    # comprehension per level, a quarter faster again than appending in nested loops.
    if value.__class__ is not dict and value.__class__ is not list:
        return False
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if node.__class__ is dict else node)
            if child.__class__ is dict or child.__class__ is list
        ]
        if not level:
            return False
    return True


async def off_loop(request: web.Request, work: Callable[..., T], *args: object) -> T:
    """`work(*args)`, in a worker thread when the request's body is large: parsing, summarising
    or estimating 20 MiB takes long enough to stall every other client on the loop, while a
    thread hop would only slow small requests down."""
    if request.get(BODY_SIZE, 0) >= LARGE_BODY:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _json_problem(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    if not raw.strip():
        return "request body is empty: expected a JSON object"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"request body is not valid UTF-8 (byte {bad.start})"
    if "depth" in str(exc):
        return "request body nests too deeply"
    return f"request body is not valid JSON: {exc}"
