"""The one hook at the end of every generation request, and the sinks it feeds.

`observe_middleware` wraps the generation endpoints: it gives each request an id (returned as
`x-request-id` on every response, by `stamp_request_id`) and a `Trace`, and when the request
ends, whatever happened (an answer, an upstream error, a refusal, a client that went away), it
builds the `RequestRecord` and hands it to `Observer.finish`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.observe.journal import Journal
from proxy.observe.logline import RequestLog
from proxy.observe.metrics import Metrics
from proxy.observe.recent import RecentRequests
from proxy.observe.record import (
    CLIENT_APIS,
    DISCONNECTED,
    ERROR,
    OK,
    REFUSED,
    RequestIds,
    RequestRecord,
    Trace,
)
from proxy.observe.tracing import Tracer

log = logging.getLogger("llmproxy.observe")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TRACE = web.RequestKey("trace", Trace)
REQUEST_ID = web.RequestKey("request_id", str)
DISCONNECTED_STATUS = 499
"""nginx's code for a client that closed the connection first: never sent, only recorded."""


BATCH_LIMIT = 256
"""Records that make the sinks take a batch at once, without waiting for the timer."""
DEFAULT_FLUSH_SECONDS = 0.2


class Observer:
    """The sinks of request records; owned by the app (`proxy.appkeys.OBSERVER`).

    The status page sees each record at once; the other sinks (the request line, metrics, the
    journal, spans) take the records of `flush_seconds` together: one timer, one write of the
    lines and one wake-up of the journal's thread per batch, not per request. Per turn of the
    event loop was not enough: under load a turn ends about one request, so each request paid
    for a write of its own (and at concurrency 1, for two). `flush` hands over what waits now:
    at shutdown and before `/metrics` is read."""

    def __init__(
        self,
        metrics: Metrics | None,
        journal: Journal | None = None,
        tracer: Tracer | None = None,
        recent: RecentRequests | None = None,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.journal = journal
        self.tracer = tracer
        self.recent = recent or RecentRequests()
        self.ids = RequestIds()
        self.log = RequestLog()
        self.flush_seconds = flush_seconds
        self._batch: list[RequestRecord] = []
        self._timer: asyncio.TimerHandle | None = None

    def stopping(self) -> None:
        """The daemon stops: what waits goes out now, before the requests still running are
        drained, and theirs wait no longer than the default interval, so a stop that ends in
        a kill after the drain's grace period loses none of the requests that had ended."""
        self.flush_seconds = min(self.flush_seconds, DEFAULT_FLUSH_SECONDS)
        self.flush()

    def finish(self, record: RequestRecord) -> None:
        self.recent.add(record)
        batch = self._batch
        batch.append(record)
        if len(batch) == 1:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)
        elif len(batch) == BATCH_LIMIT:
            asyncio.get_running_loop().call_soon(self.flush)  # after this request's answer

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self.log.write(batch)
            if self.metrics is not None:
                self.metrics.observe_all(batch)
            if self.journal is not None:
                self.journal.add_all(batch)
            if self.tracer is not None:
                for record in batch:
                    self.tracer.export(record)
        except Exception:  # seeing a request must never fail one
            log.exception("could not record %d requests", len(batch))


def trace_of(request: web.Request) -> Trace:
    """The request's trace; a detached one where no middleware made it (nothing records it)."""
    trace = request.get(TRACE)
    if trace is None:
        trace = request[TRACE] = Trace("", "")
    return trace


def observe_middleware(observer: Observer) -> Middleware:
    """Outermost: it sees the final status of everything the inner layers answered."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request[REQUEST_ID] = observer.ids.next()
        api = CLIENT_APIS.get(request.path) if request.method == "POST" else None
        if api is None:
            return await handler(request)
        trace = request[TRACE] = Trace(request_id, api)
        status, outcome = 500, ERROR
        try:
            response = await handler(request)
            status = response.status
            if status >= 400:
                outcome = ERROR if trace.decision is not None else REFUSED
            else:
                outcome = ERROR if trace.error else OK
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            status, outcome = DISCONNECTED_STATUS, DISCONNECTED
            raise
        except web.HTTPException as exc:
            status, outcome = exc.status, REFUSED if trace.decision is None else ERROR
            raise
        finally:
            if outcome == DISCONNECTED and not trace.error:
                trace.error = DISCONNECTED
            try:
                observer.finish(trace.record(status, outcome))
            except Exception:  # seeing a request must never fail it
                log.exception("could not record request %s", request_id)

    return middleware


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["x-request-id"] = request_id
