"""The request record: what one request did, built once at its end and never changed.

A `Trace` travels with the request (`request[TRACE]`) and is filled in by the handler as things
happen: the route, each stream event (for time to first token and usage), the attempts. The
observe middleware turns it into a `RequestRecord` when the request ends, whatever the outcome.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.capabilities import ModelCapabilities
from proxy.frozen import frozen
from proxy.observe.cost import usage_cost
from proxy.types import (
    Attempt,
    ClientAPI,
    Decision,
    JSONObject,
    MessageStart,
    StreamEvent,
    Target,
    Usage,
    UsageUpdate,
)

if TYPE_CHECKING:
    from proxy.midstream import StreamReport

OK = "ok"
ERROR = "error"
DISCONNECTED = "client_disconnected"
"""The client went away before the answer was complete."""
REFUSED = "refused"
"""Turned away before routing: bad key, bad body, rate limit."""


@frozen
class RequestRecord:
    id: str
    started: float
    """Wall-clock time (epoch seconds) the request arrived."""
    client_api: str
    """`openai`, `anthropic` or `responses`: the API the client spoke."""
    stream: bool
    requested_model: str
    route: str
    """The scenario that supplied the chain (`default`, `think`...), empty when not routed."""
    reason: str
    served: Target | None
    attempts: tuple[Attempt, ...]
    usage: Usage
    cost: float | None
    ttft_ms: float | None
    total_ms: float
    status: int
    outcome: str
    """`ok`, `error`, `client_disconnected` or `refused`."""
    error: str = ""
    """The error class of a failed request (`rate_limited`, `server_error`...)."""
    fallbacks: int = 0
    """Tries given up on before the one that first answered (for a stream: the committed one)."""
    takeovers: int = 0
    """Mid-stream takeovers: tries that carried on a stream cut after its commit point."""

    def to_json(self) -> JSONObject:
        """The log line's and the API's shape (no prompt, no answer, no key)."""
        return {
            "id": self.id,
            "time": round(self.started, 3),
            "client_api": self.client_api,
            "stream": self.stream,
            "model": self.requested_model,
            "route": self.route,
            "reason": self.reason,
            "served": str(self.served) if self.served else None,
            "attempts": [a.to_json() for a in self.attempts],
            "path": attempts_path(self.attempts),
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cache_read_tokens": self.usage.cache_read_input_tokens,
            "cache_write_tokens": self.usage.cache_creation_input_tokens,
            "cost_usd": self.cost,
            "ttft_ms": _round(self.ttft_ms),
            "total_ms": round(self.total_ms, 1),
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
        }


def fallbacks_before_answer(attempts: tuple[Attempt, ...] | list[Attempt]) -> int:
    """Tries given up on before the first that answered (all of them when none did)."""
    count = 0
    for attempt in attempts:
        if attempt.ok:
            break
        count += 1
    return count


def attempts_path(attempts: tuple[Attempt, ...] | list[Attempt]) -> str:
    """`zai 500 -> cerebras`: each attempt's provider, with its failure when it failed (the
    model is named only when a provider appears with two models)."""
    if not attempts:
        return ""
    if len(attempts) == 1 and attempts[0].ok:  # most requests: one attempt, and it answered
        return attempts[0].target.provider
    models: dict[str, set[str]] = {}
    if len(attempts) > 1:  # most requests have one attempt, named by its provider
        for attempt in attempts:
            models.setdefault(attempt.target.provider, set()).add(attempt.target.model)
    parts = []
    for attempt in attempts:
        name = attempt.target.provider
        if len(models.get(name, ())) > 1:
            name = str(attempt.target)
        if attempt.ok:
            parts.append(name)
        elif attempt.status is None and attempt.detail.startswith(("skipped", "circuit", "cool")):
            parts.append(f"{name} skipped")
        else:
            parts.append(f"{name} {attempt.outcome}")
    return " -> ".join(parts)


class RequestIds:
    """`req_` and 24 hex digits: a random prefix drawn once per app, then a counter. Unique
    across restarts (the prefix) without a system call per request (os.urandom is one), and
    increasing, so the journal's index only ever appends."""

    def __init__(self) -> None:
        self._prefix = "req_" + os.urandom(6).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


class Trace:
    """One request in progress. Only its own handler writes to it; `record` reads it once."""

    __slots__ = (
        "_capabilities",
        "_priced",
        "attempts",
        "client_api",
        "decision",
        "error",
        "fallbacks",
        "id",
        "model",
        "served",
        "started",
        "started_wall",
        "stream",
        "takeovers",
        "ttft_ms",
        "usage",
    )

    def __init__(self, request_id: str, client_api: str) -> None:
        self.id = request_id
        self.client_api = client_api
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.model = ""
        self.stream = False
        self.decision: Decision | None = None
        self.served: Target | None = None
        self.attempts: tuple[Attempt, ...] = ()
        self.usage = Usage()
        self.ttft_ms: float | None = None
        self.error = ""
        self.fallbacks = 0
        self.takeovers = 0
        self._capabilities: Callable[[Target], ModelCapabilities] | None = None
        self._priced: tuple[Usage, Target, float | None] | None = None

    # --- written by the handler -----------------------------------------------------------------

    def routed(
        self,
        model: str,
        stream: bool,
        decision: Decision,
        capabilities: Callable[[Target], ModelCapabilities],
    ) -> None:
        """`capabilities`: the request's config snapshot's, for the served model's prices."""
        self.model = model
        self.stream = stream
        self.decision = decision
        self._capabilities = capabilities

    def saw(self, event: StreamEvent) -> None:
        """A stream event on its way to the client: the first content one sets the time to
        first token; usage updates are cumulative over the answer's attempts."""
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif self.ttft_ms is None and not isinstance(event, MessageStart):
            self.ttft_ms = (time.monotonic() - self.started) * 1000.0

    def ended(
        self,
        served: Target | None,
        attempts: tuple[Attempt, ...] | list[Attempt],
        usage: Usage | None = None,
        error: str = "",
    ) -> None:
        self.attempts = tuple(attempts)
        self.fallbacks = fallbacks_before_answer(self.attempts)
        self.served = served
        if usage is not None:
            self.usage = usage
        if error:
            self.error = error

    def stream_ended(self, report: StreamReport) -> None:
        """A stream's outcome from its owner's snapshot: after a mid-stream takeover the target
        that wrote the end of the answer is the one that served it, and the usage is what every
        try cost (`billed`: a cut try's too, and the prompt each try was sent), not the answer's
        usage the client was shown."""
        self.ended(report.served or report.committed, report.attempts, report.billed)
        self.fallbacks, self.takeovers = report.fallbacks, report.takeovers

    def failed(self, error_class: str) -> None:
        """The answer ended with an error after its headers went out."""
        self.error = error_class

    def cost(self) -> float | None:
        """The request's cost, priced at the served target's rates (cut attempts of a takeover
        included: their usage is part of the answer's)."""
        if self.served is None or self._capabilities is None:
            return None
        # Asked twice a request (the cost header or trailer, then the record): priced once while
        # the usage and the served target, both immutable, are the ones it was priced for.
        priced = self._priced
        if priced is not None and priced[0] is self.usage and priced[1] is self.served:
            return priced[2]
        cost = usage_cost(self.usage, self._capabilities(self.served))
        self._priced = (self.usage, self.served, cost)
        return cost

    # --- read once, at the end ------------------------------------------------------------------

    def record(self, status: int, outcome: str) -> RequestRecord:
        decision = self.decision
        return RequestRecord(
            id=self.id,
            started=self.started_wall,
            client_api=self.client_api,
            stream=self.stream,
            requested_model=self.model,
            route=decision.scenario.value if decision else "",
            reason=decision.reason if decision else "",
            served=self.served,
            attempts=self.attempts,
            usage=self.usage,
            cost=self.cost(),
            ttft_ms=self.ttft_ms if self.stream else None,
            total_ms=(time.monotonic() - self.started) * 1000.0,
            status=status,
            outcome=outcome,
            error=self.error,
            fallbacks=self.fallbacks,
            takeovers=self.takeovers,
        )


CLIENT_APIS = {
    "/v1/chat/completions": ClientAPI.OPENAI.value,
    "/v1/messages": ClientAPI.ANTHROPIC.value,
    "/v1/responses": ClientAPI.RESPONSES.value,
}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
