"""The fallback loop: walk an immutable chain, one attempt record per try, never recursion.

Per target (see `Walk._try`): a 429 whose Retry-After is within the configured cap is retried
once after exactly that wait; a transient failure before any byte (5xx, 529, connection reset)
is retried once after a short jitter; everything else moves on at once. A failure that leaves the
target's breaker open is never retried into it. Which failures move on is decided by
`ErrorClass` alone (`classify.FALLBACK_CLASSES`); a plain invalid request, or a content-filter
refusal on a route that did not opt in, goes back to the client unchanged.

Health (`proxy.health`) is consulted before each target: open breakers and cooling targets are
skipped (the reason lands in the attempts) while another target can serve. A non-streaming
answer (or a buffered stream) is a success when it arrives; a stream's success is recorded by
its owner only when the stream finishes (`proxy.midstream.StreamLife`).

`Walk` is the one place that decides retry, fallback, cooldown and breaker, for the
non-streaming path, the pre-commit path of streams and their continuations alike. Its attempts
are an append-only `Ledger` with one entry per upstream try, added when the try ends: a stream
that started is entered when it finishes, is cut, or is closed, never at its commit point.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from proxy.capabilities import clamp_max_tokens, output_cap
from proxy.classify import FALLBACK_CLASSES
from proxy.config import Config, ProviderConfig, RouteOptions
from proxy.errors import (
    ChainExhaustedError,
    ClientFacingError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from proxy.exchange import Pair, pair
from proxy.frozen import field, frozen, replace
from proxy.health import HealthRegistry
from proxy.providers.base import EventBatch, UpstreamRequest
from proxy.providers.registry import Upstreams
from proxy.translate.prefill import mark_prefill
from proxy.translate.request_to_openai import client_user_id
from proxy.types import (
    Attempt,
    ClientAPI,
    Decision,
    ErrorClass,
    JSONObject,
    MessageStart,
    ProviderFormat,
    RequestSummary,
    StreamEvent,
    Target,
    UpstreamReply,
    Usage,
    UsageUpdate,
)

log = logging.getLogger("llmproxy.fallback")
T = TypeVar("T")

# Failures that say the operator's config is wrong rather than the request: logged loudly.
CONFIG_FAILURES = frozenset({ErrorClass.AUTH, ErrorClass.NOT_FOUND})
TRANSIENT_RETRY = frozenset({ErrorClass.SERVER_ERROR, ErrorClass.CONNECTION})
CLOSED_EARLY = "closed before its end (the client left)"


@frozen
class Job:
    """One client request, parsed and routed, ready to walk its chain."""

    client_format: ClientAPI
    body: JSONObject
    summary: RequestSummary
    decision: Decision
    stream: bool
    forward_headers: Mapping[str, str] = field(default_factory=dict)
    cache_key: str | None = None
    """The conversation's digest (`proxy.conversation`): sent as `prompt_cache_key` to the
    providers that route requests to their prompt caches by it."""


@frozen
class Completed:
    """A non-streaming answer, already in the client's format."""

    target: Target
    body: JSONObject
    usage: Usage
    attempts: tuple[Attempt, ...]


class Ledger:
    """A request's settled attempts, in order. Append-only: nothing is ever changed or removed,
    so a snapshot taken at any moment is a true prefix of the final record. A try still
    streaming is not in it yet (its owner reports it as `streaming` beside a snapshot)."""

    __slots__ = ("_attempts",)

    def __init__(self, first: Iterable[Attempt] = ()) -> None:
        self._attempts: list[Attempt] = list(first)

    def add(self, attempt: Attempt) -> None:
        self._attempts.append(attempt)

    def snapshot(self) -> tuple[Attempt, ...]:
        return tuple(self._attempts)

    def __len__(self) -> int:
        return len(self._attempts)


@frozen
class Plan:
    """A target ready to be called: its provider config and the translators to use."""

    target: Target
    provider: ProviderConfig
    pair: Pair


Call = Callable[[Plan, UpstreamRequest], Awaitable[T]]
Accept = Callable[[Plan], str | None]


class FallbackRunner:
    """Walks chains for one app: holds the config, the pooled transports and the health.

    Streams are served by their own owner, `proxy.midstream.StreamLife(runner, job)`, which
    walks with the same `Walk`."""

    def __init__(
        self,
        config: Config,
        upstreams: Upstreams,
        health: HealthRegistry,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.upstreams = upstreams.serving(config)  # before its first request: no import then
        self.health = health
        self.rng = rng or random.Random()

    async def complete(self, job: Job) -> Completed:
        walk = Walk(self, job)

        async def call(plan: Plan, request: UpstreamRequest) -> UpstreamReply:
            return await self.upstreams.transport(plan.provider).complete(request)

        plan, reply = await walk.first_success(call)
        body, usage = plan.pair.answer(
            reply, plan.target.model, job.body, input_tokens=job.summary.token_estimate
        )
        return Completed(plan.target, body, usage, walk.ledger.snapshot())

    async def read_stream_head(
        self, plan: Plan, request: UpstreamRequest
    ) -> tuple[list[StreamEvent], AsyncIterator[EventBatch]]:
        """Open a stream and read up to the batch holding its first content event (the commit
        point)."""
        batches = self.upstreams.transport(plan.provider).stream(request)
        try:
            head: list[StreamEvent] = []
            async for batch in batches:
                head += batch
                if not all(isinstance(event, MessageStart | UsageUpdate) for event in batch):
                    return head, batches
            return head, batches
        except BaseException:
            await close_stream(batches)
            raise

    async def read_whole_stream(self, plan: Plan, request: UpstreamRequest) -> list[StreamEvent]:
        """Buffer mode: the whole answer, or an error (then nothing was sent to the client)."""
        batches = self.upstreams.transport(plan.provider).stream(request)
        try:
            return [event async for batch in batches for event in batch]
        finally:
            await close_stream(batches)


class Walk:
    """One request's progress along its chain: the position, the attempts, the deadline.

    A stream that fails after its commit point asks the same walk for the next target, so a
    continuation never goes back to a target already tried in this request. The walk owns the
    attempts ledger; everyone else reads snapshots.
    """

    def __init__(self, runner: FallbackRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        # Targets routing left out (too small a context, no tools...) are reported first.
        self.ledger = Ledger(
            Attempt(s.target, None, ErrorClass.UNAVAILABLE, 0.0, f"skipped: {s.reason}")
            for s in job.decision.skipped
        )
        self.last: UpstreamError | None = None
        self.deadline = time.monotonic() + runner.config.proxy.total_timeout
        self.options: RouteOptions = runner.config.router.route_options(job.decision.scenario)
        self._pending: list[Target] = list(job.decision.chain)
        self._deferred: list[Target] = []  # skipped for an open breaker: a last resort
        self._reached_upstream = False
        self._last_resort: set[Target] = set()

    async def first_success(
        self,
        call: Call[T],
        *,
        body: JSONObject | None = None,
        accept: Accept | None = None,
        settles: bool = True,
        prefill: bool = False,
    ) -> tuple[Plan, T]:
        """Try the remaining targets in order until `call` succeeds on one.

        `prefill=True` means `body` ends with a partial answer to continue: each target gets it
        in its own prefill style (`accept` must skip targets without one).

        `settles=False` means the call's success is not the end of the answer (a stream's
        head): the try enters the ledger, and the target's health hears of its outcome, only
        when the stream ends (`record_stream_success`, `record_failure` or `release`); a
        half-open probe stays reserved until then.

        Raises ClientFacingError for answers that go back as they are, and ChainExhaustedError
        when no target is left.
        """
        while True:
            target = self._next_target()
            if target is None:
                raise ChainExhaustedError(self.ledger.snapshot(), self.last)
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
                sent = self.job.body if body is None else body
                return plan, await self._try(plan, call, sent, settles, prefill)
            except UpstreamError as error:
                if not self._falls_back(error):
                    raise ClientFacingError(
                        error, plan.provider.format, self.ledger.snapshot()
                    ) from error
                if error.error_class == ErrorClass.CONTEXT_LENGTH:
                    self._prefer_larger_contexts(target)
                if time.monotonic() >= self.deadline:
                    raise ChainExhaustedError(self.ledger.snapshot(), self.last) from error

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
        self.ledger.add(Attempt(target, None, ErrorClass.UNAVAILABLE, 0.0, reason))

    async def _try(
        self, plan: Plan, call: Call[T], body: JSONObject, settles: bool, prefill: bool = False
    ) -> T:
        """One target, with at most one same-target retry (see the module docstring)."""
        health = self.runner.health
        retried = False
        while True:
            request = self.build_request(plan, body, prefill=prefill)
            started = time.monotonic()
            self._reached_upstream = True
            try:
                result = await self._within(plan, call, request)
            except UpstreamError as error:
                self.record_failure(plan, error, started)
                delay = None if retried else self._retry_delay(error)
                if delay is None or time.monotonic() + delay >= self.deadline:
                    raise
                if health.is_open(plan.target):
                    # This failure opened the breaker (or re-opened it after a half-open probe):
                    # a retry would walk straight into it.
                    raise
                retried = True
                await asyncio.sleep(delay)
                continue
            except BaseException:
                health.release_probe(plan.target)
                raise
            if settles:
                elapsed = _ms(started)
                self.ledger.add(Attempt(plan.target, 200, None, elapsed))
                health.record_success(plan.target, elapsed)
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

    async def _within(self, plan: Plan, call: Call[T], request: UpstreamRequest) -> T:
        """The transports bound every wait before the first content by the request's deadline
        (`UpstreamRequest.deadline`), inside the one timer of each wait. Buffer mode reads the
        whole answer before the client sees anything, so all of it is bounded here."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeoutError("request deadline reached", target=plan.target)
        if not (self.job.stream and self.options.buffer):
            return await call(plan, request)
        try:
            async with asyncio.timeout(remaining):
                return await call(plan, request)
        except TimeoutError as exc:
            if isinstance(exc, UpstreamError):
                raise
            raise UpstreamTimeoutError("request deadline reached", target=plan.target) from exc

    def build_request(
        self, plan: Plan, body: JSONObject, *, prefill: bool = False
    ) -> UpstreamRequest:
        job, config = self.job, self.runner.config
        capabilities = config.capabilities(plan.target)
        upstream_body = plan.pair.request(body, plan.target.model)
        if prefill and plan.provider.format is ProviderFormat.OPENAI and capabilities.prefill:
            upstream_body = mark_prefill(upstream_body, capabilities.prefill)
        cap = output_cap(capabilities, job.summary.token_estimate)
        upstream_body = clamp_max_tokens(upstream_body, plan.provider.format, cap)
        if job.stream:
            upstream_body["stream"] = True
            if plan.provider.format is ProviderFormat.OPENAI:
                upstream_body["stream_options"] = {"include_usage": True}
        if job.cache_key and plan.provider.prompt_cache_key:
            upstream_body.setdefault("prompt_cache_key", job.cache_key)
        if plan.provider.forward_user_id and "user" in upstream_body:
            raw_user = client_user_id(body) if job.client_format is ClientAPI.ANTHROPIC else None
            if raw_user is not None:  # the operator trusts this provider with the client's id
                upstream_body["user"] = raw_user
        provider = plan.provider
        if self.options.timeouts:
            provider = replace(provider, timeouts=provider.timeouts.merged(self.options.timeouts))
        return UpstreamRequest(
            target=plan.target,
            provider=provider,
            body=upstream_body,
            stream=job.stream,
            forward_headers=job.forward_headers if plan.pair.same_format else {},
            input_tokens=job.summary.token_estimate,
            deadline=self.deadline,
        )

    # --- outcomes reported by a stream's owner after the commit point --------------------------

    def record_failure(self, plan: Plan, error: UpstreamError, started: float) -> None:
        """One failed attempt: in the ledger, in the target's health, in the log."""
        elapsed = _ms(started)
        self.last = error
        self.ledger.add(
            Attempt(plan.target, error.status, error.error_class, elapsed, error.message[:200])
        )
        self.runner.health.record_failure(
            plan.target,
            error.error_class,
            latency_ms=elapsed,
            retry_after=error.retry_after,
            detail=error.message[:120],
        )
        _log_failure(plan.target, error)

    def record_stream_success(self, plan: Plan, started: float, ttft_ms: float) -> None:
        """A stream reached its finish: only now is the try `ok`, in the ledger and in its
        target's health."""
        elapsed = _ms(started)
        self.ledger.add(Attempt(plan.target, 200, None, elapsed))
        self.runner.health.record_success(plan.target, elapsed, ttft_ms=ttft_ms)

    def release(self, plan: Plan, started: float) -> None:
        """A stream closed before it ended (the client left): no outcome for its target's
        health, but its probe slot is freed, and the ledger says the try never ended."""
        self.ledger.add(Attempt(plan.target, 200, None, _ms(started), CLOSED_EARLY, True))
        self.runner.health.release_probe(plan.target)


async def close_stream(events: AsyncIterator[object]) -> None:
    """Close an upstream event stream now (releasing its connection), not at garbage collection."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


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
