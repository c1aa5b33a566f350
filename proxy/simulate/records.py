"""What a simulated provider remembers about each request it received.

An `Exchange` is the mutable, per-request notebook a handler fills in; when the handler ends (by
returning, by a fault dropping the connection, or by the client going away) it is frozen into a
`RequestRecord` and appended to the provider's `RequestLog`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from proxy.frozen import frozen

OK = "ok"
CLIENT_DISCONNECTED = "client_disconnected"
SERVER_STOPPED = "server_stopped"


@frozen
class RequestRecord:
    """One request as the simulated provider saw it.

    `outcome` is `"ok"`, a fault label (`"Status(429)"`, `"CutAfter"`, ...), `"rejected"` (the
    simulator itself refused it: auth, validation), `"client_disconnected"` (the client went away
    before the response was complete: the upstream was cancelled) or `"server_stopped"`.
    `fault` is the label of the fault the plan assigned, whatever the outcome.
    """

    seq: int
    started: float  # time.monotonic()
    ended: float
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    stream: bool
    fault: str | None
    outcome: str
    status: int | None  # HTTP status sent; None if no headers went out
    chunks_sent: int  # content chunks written before the end

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def duration(self) -> float:
        return self.ended - self.started


class RequestLog:
    """Thread-safe list of records (the server may run in another thread than the test)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._next_seq = 0
        self._in_flight = 0
        # Set by the provider while it shuts down, so cancellations are not blamed on clients.
        self.stopping = False

    def open(self, request: web.Request) -> Exchange:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._in_flight += 1
        return Exchange(self, seq, request)

    def close(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._in_flight -= 1

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        with self._lock:
            return tuple(sorted(self._records, key=lambda r: r.seq))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r.outcome for r in self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class Exchange:
    """The notebook of one request; use as `async with log.open(request) as ex:`.

    Handlers never raise to end a request on purpose (aiohttp would log it as a server error):
    a fault that drops the connection sets `outcome` and returns a response that can no longer be
    written. Only cancellation (the client left) and real bugs reach `__aexit__` as exceptions.
    """

    def __init__(self, log: RequestLog, seq: int, request: web.Request) -> None:
        self._log = log
        self.seq = seq
        self.request = request
        self.started = time.monotonic()
        self.body: Any = None
        self.stream = False
        self.fault: str | None = None
        self.outcome: str | None = None
        self.status: int | None = None
        self.chunks_sent = 0

    async def __aenter__(self) -> Exchange:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            outcome = self.outcome or OK
        elif self._log.stopping:
            outcome = SERVER_STOPPED
        elif isinstance(exc, asyncio.CancelledError | ConnectionError):
            # aiohttp cancels the handler (handler_cancellation=True) or a write fails: either
            # way the client went away mid-request.
            outcome = CLIENT_DISCONNECTED
        else:
            outcome = f"error:{type(exc).__name__}"
        self._log.close(
            RequestRecord(
                seq=self.seq,
                started=self.started,
                ended=time.monotonic(),
                method=self.request.method,
                path=self.request.path,
                headers={k.lower(): v for k, v in self.request.headers.items()},
                body=self.body,
                stream=self.stream,
                fault=self.fault,
                outcome=outcome,
                status=self.status,
                chunks_sent=self.chunks_sent,
            )
        )
