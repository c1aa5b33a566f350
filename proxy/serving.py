"""The one way the daemon is put on a socket: `llmproxy serve`, the CLI's in-process mode, the
simulated deployment and the tests all run the app through `DaemonRunner`.

What it changes in aiohttp's `AppRunner`: a request aiohttp cannot parse (a bad request line, a
NUL in a header, broken chunked framing) is answered by `RequestHandler.handle_error` before any
middleware runs, as a plain-text page. Here that answer is JSON in OpenAI's error shape: the
path, and so the client's dialect, may be unknown, and `{"error": {"message", "type", "param",
"code"}}` is what generic clients parse. aiohttp still logs it, sets Content-Length and closes
the connection (the parser cannot find the next request in a broken stream).

aiohttp has no public hook for this answer, so `handle_error` is overridden in a
`RequestHandler` subclass, built by a `Server` subclass that `DaemonRunner._make_server`
returns. Checked against the aiohttp versions `pyproject.toml` allows; `tests/test_serving.py`
fails if aiohttp stops calling `handle_error` for a parse error or builds its handlers elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from proxy.client_dialects import OPENAI
from proxy.memory import give_back, malloc_trim, trim_when_quiet

MAX_REASON = 200
YOUNG_COLLECTION = 10_000
"""Net new container objects between two young-generation collections (CPython's default is
700). A 30 KB request parses into about 230 containers, its translation and answer into more,
so at the default the collector ran every few requests and, through them, reached the older
generations: 0.2 ms per Claude Code request at concurrency 32, 10% of the daemon's CPU. Garbage
cycles still get collected, after at most this many objects."""
_STATUS_PREFIX = re.compile(r"\d{3}, message:")
_CODES = {400: "malformed_request", 504: "timeout"}


def parser_reason(text: str) -> str:
    """What aiohttp's parser found wrong, in one line: its messages go on to quote the client's
    bytes with a caret under them, and a body error is prefixed with `400, message:`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and _STATUS_PREFIX.fullmatch(lines[0]):
        lines = lines[1:]
    return lines[0].rstrip(":")[:MAX_REASON] if lines else "cannot parse it"


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as JSON."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        waiting = self._current_request  # a handler runs; its body may still be arriving
        queued = len(self._messages)
        super().data_received(data)
        if waiting is None or len(self._messages) == queued:
            return
        error = self._messages[-1][0]
        if isinstance(error, _ErrInfo) and not waiting.content.is_eof():
            # aiohttp's C parser reports broken framing inside a body (a bad chunk size) as a
            # new bad request queued behind this one, and the handler would wait for body
            # bytes that never come; its pure-Python parser fails the body, as here.
            waiting.content.set_exception(web.RequestPayloadError(str(error.exc)), error.exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs, refuses once output was written, and keeps the status
        plain = super().handle_error(request, status, exc, message)
        if plain.status == 400:
            text = f"malformed HTTP request: {parser_reason(message or '')}"
        else:
            text = "internal error" if plain.status >= 500 else f"HTTP {plain.status}"
        body = OPENAI.error_body(plain.status, text, code=_CODES.get(plain.status))
        response = web.Response(
            body=orjson.dumps(body), status=plain.status, content_type="application/json"
        )
        response.force_close()
        # aiohttp answers an unparsed request as HTTP/1.0, where closing goes unsaid
        response.headers["Connection"] = "close"
        return response

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            forget(request, resp)


def forget(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Let go of what an answered request carried. aiohttp's connection loop keeps its last
    request and response in local variables while the connection waits, kept alive, for the
    next one: the raw body it cached, what the layers left under request keys (the parsed
    body), a response's body. About 100 KB for a Claude Code request, on every idle
    connection. The handler and every middleware have returned by now."""
    request._state.clear()  # its keys: one call, not a `del` through the mapping each
    request._read_bytes = None  # `request.read()`'s cache; aiohttp never reads it again
    if isinstance(response, web.Response):
        response.body = None  # sent


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class DaemonRunner(web.AppRunner):
    """`AppRunner` with the daemon's settings (a client that goes away cancels its handler, no
    access log: the daemon logs each request itself) and JSON answers to unparsable HTTP."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("shutdown_timeout", 1.0)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _JsonErrorServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )


def collect_less() -> None:
    """Tune the cyclic garbage collector for a serving process whose requests are mostly made of
    short-lived containers that reference counting frees. The objects alive once the daemon
    listens (modules, config, the app) mostly live as long as it does: `gc.freeze` keeps every
    later full collection from walking them again. Reference counting still frees a frozen
    object; only a cycle among them (say, in the first config, once a reload replaced it)
    would stay, once, since everything made later is collected as usual."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, old)


@contextlib.asynccontextmanager
async def listening(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False, **runner: Any
) -> AsyncIterator[DaemonRunner]:
    """The app on `host:port` (0: an ephemeral port, see `runner.addresses`) until the block
    ends; then in-flight requests get the runner's `shutdown_timeout` to finish."""
    daemon = DaemonRunner(app, **runner)
    await daemon.setup()
    try:
        await web.TCPSite(daemon, host, port, reuse_port=reuse_port or None).start()
        yield daemon
    finally:
        await daemon.cleanup()


async def serve_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_listening: Callable[[], None],
    shutdown_timeout: float,
    reuse_port: bool = False,
) -> None:
    """`llmproxy serve`: listen until SIGINT or SIGTERM, then drain and return. Once it
    listens, and between bursts of requests, the C library's free memory goes back to the
    system (`proxy.memory`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    trim = malloc_trim()
    async with listening(
        app, host, port, reuse_port=reuse_port, shutdown_timeout=shutdown_timeout
    ) as daemon:
        handled = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still interrupts
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
        trimming = (
            asyncio.create_task(trim_when_quiet(daemon.server, trim))
            if trim is not None and daemon.server is not None
            else None
        )
        try:
            collect_less()
            if trim is not None:  # what importing and compiling left free (0.4 MB)
                give_back(trim, "start-up")
            on_listening()
            await stop.wait()
        finally:
            if trimming is not None:
                trimming.cancel()
            for signum in handled:
                loop.remove_signal_handler(signum)
