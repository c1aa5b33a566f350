"""The fallback loop: walk an immutable chain, one attempt record per try, never recursion.

Per target (see `_Walk._try`): a 429 whose Retry-After is within the configured cap is retried
once after exactly that wait; a transient failure before any byte (5xx, 529, connection reset)
is retried once after a short jitter; everything else moves on at once. Which failures move on
is decided by `ErrorClass` alone (`classify.FALLBACK_CLASSES`); a plain invalid request, or a
content-filter refusal on a route that did not opt in, goes back to the client unchanged.

Health (`proxy.health`) is consulted before each target: open breakers and cooling targets are
skipped (the reason lands in the attempts) while another target can serve.

Commit point: for streams, nothing is sent to the client until a target has produced its first
content event (`open_stream` returns only then). After that, failures are handled by
`proxy.midstream.RecoveringStream`, which continues the same answer on the next capable target.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from proxy.capabilities import clamp_max_tokens, output_cap
from proxy.classify import FALLBACK_CLASSES
from proxy.config import Config, ProviderConfig, RouteOptions
from proxy.errors import (
    ChainExhaustedError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from proxy.exchange import Pair, pair
from proxy.health import HealthRegistry
from proxy.providers.base import UpstreamRequest
from proxy.providers.registry import Upstreams
from proxy.types import (
    Attempt,
    Decision,
    ErrorClass,
    JSONObject,
    MessageStart,
    RequestSummary,
    StreamEvent,
    Target,
    UsageUpdate,
    WireFormat,
)

log = logging.getLogger("llmproxy.fallback")
T = TypeVar("T")

# Failures that say the operator's config is wrong rather than the request: logged loudly.
CONFIG_FAILURES = frozenset({ErrorClass.AUTH, ErrorClass.NOT_FOUND})
TRANSIENT_RETRY = frozenset({ErrorClass.SERVER_ERROR, ErrorClass.CONNECTION})


@dataclass(frozen=True, slots=True)
class Job:
    """One client request, parsed and routed, ready to walk its chain."""

    client_format: WireFormat
    body: JSONObject
    summary: RequestSummary
    decision: Decision
    stream: bool
    forward_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completed:
    """A non-streaming answer, already in the client's format."""

    target: Target
    body: JSONObject
    attempts: tuple[Attempt, ...]


@dataclass(slots=True)
class OpenedStream:
    """A stream that has produced its first content: nothing has been sent to the client yet.

    `events` yields client-safe neutral events from the first one on; it recovers from
    upstream failures itself and raises an `LLMProxyError` only when the answer cannot be
    completed. `attempts` grows while the stream recovers.
    """

    target: Target
    events: AsyncIterator[StreamEvent]
    attempts: list[Attempt]

    async def aclose(self) -> None:
        await close_stream(self.events)


class ClientFacingError(Exception):
    """An upstream answer that goes back to the client as-is (invalid request, refusal)."""

    def __init__(self, error: UpstreamError, pair: Pair, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(error.message)
        self.error = error
        self.pair = pair
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Plan:
    """A target ready to be called: its provider config and the translators to use."""

    target: Target
    provider: ProviderConfig
    pair: Pair


Call = Callable[[Plan, UpstreamRequest], Awaitable[T]]
Accept = Callable[[Plan], str | None]


class FallbackRunner:
    """Walks chains for one app: holds the config, the pooled transports and the health."""

    def __init__(
        self,
        config: Config,
        upstreams: Upstreams,
        health: HealthRegistry,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.upstreams = upstreams
        self.health = health
        self.rng = rng or random.Random()

    async def complete(self, job: Job) -> Completed:
        walk = Walk(self, job)

        async def call(plan: Plan, request: UpstreamRequest) -> JSONObject:
            return await self.upstreams.transport(plan.provider).complete(request)

        plan, upstream_body = await walk.first_success(call)
        body = plan.pair.response(upstream_body, plan.target.model)
        return Completed(plan.target, body, tuple(walk.attempts))

    async def open_stream(self, job: Job) -> OpenedStream:
        from proxy.midstream import RecoveringStream  # it builds on Walk: import at use


        walk = Walk(self, job)
        if walk.options.buffer:
            plan, events = await walk.first_success(self.read_whole_stream)
            return OpenedStream(plan.target, _replay(events), walk.attempts)
        plan, (head, rest) = await walk.first_success(self.read_stream_head)
        recovering = RecoveringStream(walk, plan, head, rest)
        return OpenedStream(plan.target, recovering.events(), walk.attempts)

    async def read_stream_head(
        self, plan: Plan, request: UpstreamRequest
    ) -> tuple[list[StreamEvent], AsyncIterator[StreamEvent]]:
        """Open a stream and read up to its first content event (the commit point)."""
        events = self.upstreams.transport(plan.provider).stream(request)
        try:
            head: list[StreamEvent] = []
            async for event in events:
                head.append(event)
                if not isinstance(event, MessageStart | UsageUpdate):
                    return head, events
            return head, events
        except BaseException:
            await close_stream(events)
            raise

    async def read_whole_stream(self, plan: Plan, request: UpstreamRequest) -> list[StreamEvent]:
        """Buffer mode: the whole answer, or an error (then nothing was sent to the client)."""
        events = self.upstreams.transport(plan.provider).stream(request)
        try:
            return [event async for event in events]
        finally:
            await close_stream(events)

    def build_request(self, job: Job, plan: Plan, body: JSONObject) -> UpstreamRequest:
        upstream_body = plan.pair.request(body, plan.target.model)
        cap = output_cap(self.config.capabilities(plan.target), job.summary.token_estimate)
        upstream_body = clamp_max_tokens(upstream_body, plan.provider.format, cap)
        if job.stream:
            upstream_body["stream"] = True
            if plan.provider.format == WireFormat.OPENAI:
                upstream_body["stream_options"] = {"include_usage": True}
        route_timeouts = self.config.router.route_options(job.decision.scenario).timeouts
        provider = plan.provider
        if route_timeouts:
            provider = replace(provider, timeouts=provider.timeouts.merged(route_timeouts))
        return UpstreamRequest(
            target=plan.target,
            provider=provider,
            body=upstream_body,
            stream=job.stream,
            forward_headers=job.forward_headers if plan.pair.same_format else {},
            input_tokens=job.summary.token_estimate,
        )


class Walk:
    """One request's progress along its chain: the position, the attempts, the deadline.

    A stream that fails after its commit point asks the same walk for the next target, so a
    continuation never goes back to a target already tried in this request.
    """

    def __init__(self, runner: FallbackRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        # Targets routing left out (too small a context, no tools...) are reported first.
        self.attempts: list[Attempt] = [
            Attempt(s.target, None, ErrorClass.UNAVAILABLE, 0.0, f"skipped: {s.reason}")
            for s in job.decision.skipped
        ]
        self.last: UpstreamError | None = None
        self.deadline = time.monotonic() + runner.config.proxy.total_timeout
        self.options: RouteOptions = runner.config.router.route_options(job.decision.scenario)
        self._pending: list[Target] = list(job.decision.chain)
        self._deferred: list[Target] = []  # skipped for an open breaker: a last resort
        self._reached_upstream = False
        self._last_resort: set[Target] = set()

    async def first_success(
        self, call: Call[T], *, body: JSONObject | None = None, accept: Accept | None = None
    ) -> tuple[Plan, T]:
        """Try the remaining targets in order until `call` succeeds on one.

        Raises ClientFacingError for answers that go back as they are, and ChainExhaustedError
        when no target is left.
        """
        while True:
            target = self._next_target()
            if target is None:
                raise ChainExhaustedError(tuple(self.attempts), self.last)
            plan = self._plan(target)
            if plan is None:
                continue
            if accept is not None and (reason := accept(plan)) is not None:
                self._skip(target, reason)
                continue
            if target not in self._last_resort:
                reason = self.runner.health.skip_reason(target)
                if reason is not None:
                    self._skip(target, reason)
                    if self.runner.health.status(target).cooldown_left == 0:
                        self._deferred.append(target)
                    continue
            try:
                return plan, await self._try(plan, call, self.job.body if body is None else body)
            except UpstreamError as error:
                if not self._falls_back(error):
                    raise ClientFacingError(error, plan.pair, tuple(self.attempts)) from error
                if error.error_class == ErrorClass.CONTEXT_LENGTH:
                    self._prefer_larger_contexts(target)
                if time.monotonic() >= self.deadline:
                    raise ChainExhaustedError(tuple(self.attempts), self.last) from error

    def _next_target(self) -> Target | None:
        if self._pending:
            return self._pending.pop(0)
        if self._deferred and not self._reached_upstream:
            # Every target was skipped for its breaker: rather than refuse the request, try the
            # one that recovers soonest (a cooling target, e.g. out of quota, is never forced).
            self._deferred.sort(key=self.runner.health.recovers_in)
            target = self._deferred.pop(0)
            self._last_resort.add(target)
            return target
        return None

    def _prefer_larger_contexts(self, failed: Target) -> None:
        """After a context-length refusal, try the remaining targets largest window first
        (stable, so the configured order breaks ties and unknown windows keep their place)."""
        capabilities = self.runner.config.capabilities
        limit = capabilities(failed).context_window or 0
        self._pending.sort(key=lambda t: -(capabilities(t).context_window or limit))

    def _falls_back(self, error: UpstreamError) -> bool:
        if error.error_class == ErrorClass.CONTENT_FILTER:
            return self.options.content_filter_fallback
        return error.error_class in FALLBACK_CLASSES

    def _plan(self, target: Target) -> Plan | None:
        provider = self.runner.config.provider(target.provider)
        if provider is None:  # validated at load; kept for configs swapped at runtime
            self._skip(target, "unknown provider")
            return None
        translators = pair(self.job.client_format, provider.format)
        if translators is None or not self.runner.upstreams.has(provider):
            self._skip(target, f"provider format '{provider.format}' is not supported")
            return None
        return Plan(target, provider, translators)

    def _skip(self, target: Target, reason: str) -> None:
        self.attempts.append(Attempt(target, None, ErrorClass.UNAVAILABLE, 0.0, reason))

    async def _try(self, plan: Plan, call: Call[T], body: JSONObject) -> T:
        """One target, with at most one same-target retry (see the module docstring)."""
        health = self.runner.health
        retried = False
        while True:
            request = self.runner.build_request(self.job, plan, body)
            started = time.monotonic()
            self._reached_upstream = True
            try:
                result = await self._within(plan, call(plan, request))
            except UpstreamError as error:
                elapsed = _ms(started)
                self.last = error
                self.attempts.append(
                    Attempt(
                        plan.target, error.status, error.error_class, elapsed, error.message[:200]
                    )
                )
                health.record_failure(
                    plan.target,
                    error.error_class,
                    latency_ms=elapsed,
                    retry_after=error.retry_after,
                    detail=error.message[:120],
                )
                _log_failure(plan.target, error)
                delay = None if retried else self._retry_delay(error)
                if delay is None or time.monotonic() + delay >= self.deadline:
                    raise
                retried = True
                await asyncio.sleep(delay)
                continue
            except BaseException:
                health.release_probe(plan.target)
                raise
            elapsed = _ms(started)
            self.attempts.append(Attempt(plan.target, 200, None, elapsed))
            health.record_success(
                plan.target, elapsed, ttft_ms=elapsed if self.job.stream else None
            )
            return result

    def _retry_delay(self, error: UpstreamError) -> float | None:
        if error.error_class == ErrorClass.RATE_LIMITED:
            wait = error.retry_after
            if wait is not None and wait <= self.runner.config.proxy.retry_after_cap:
                return wait
            return None
        if error.error_class in TRANSIENT_RETRY and not isinstance(error, UpstreamRefusedError):
            return self.runner.rng.uniform(0.05, 0.25)
        return None

    async def _within(self, plan: Plan, awaitable: Awaitable[T]) -> T:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeoutError("request deadline reached", target=plan.target)
        try:
            async with asyncio.timeout(remaining):
                return await awaitable
        except TimeoutError as exc:
            if isinstance(exc, UpstreamError):
                raise
            raise UpstreamTimeoutError("request deadline reached", target=plan.target) from exc

    def record_stream_failure(self, plan: Plan, error: UpstreamError, started: float) -> None:
        """A failure after the commit point, reported by the recovering stream."""
        elapsed = _ms(started)
        self.last = error
        self.attempts.append(
            Attempt(plan.target, error.status, error.error_class, elapsed, error.message[:200])
        )
        self.runner.health.record_failure(
            plan.target, error.error_class, latency_ms=elapsed, detail=error.message[:120]
        )
        _log_failure(plan.target, error)


async def close_stream(events: AsyncIterator[StreamEvent]) -> None:
    """Close an upstream event stream now (releasing its connection), not at garbage collection."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def _replay(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def _log_failure(target: Target, error: UpstreamError) -> None:
    status = error.status if error.status is not None else "no status"
    if error.error_class in CONFIG_FAILURES:
        log.error(
            "%s failed: %s (%s): check this provider's key, URL and model list: %s",
            target,
            error.error_class.value,
            status,
            error.message[:200],
        )
    elif error.error_class in FALLBACK_CLASSES:
        log.warning("%s failed: %s (%s)", target, error.error_class.value, status)
    else:
        log.info(
            "%s answered %s (%s); returned to the client", target, error.error_class.value, status
        )


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
