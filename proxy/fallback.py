"""The fallback loop: walk an immutable chain, one attempt record per try, never recursion.

Commit point: for streams, nothing is sent to the client until a target has produced its first
content event (`open_stream` returns only then), so every failure before that moves on to the
next target invisibly. Which failures move on is decided by `ErrorClass` alone
(`classify.FALLBACK_CLASSES`); a plain invalid request goes back to the client unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from proxy.classify import FALLBACK_CLASSES
from proxy.config import Config, ProviderConfig
from proxy.errors import ChainExhaustedError, UpstreamError, UpstreamTimeoutError, UpstreamUnavailable
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
    """A stream that has produced its first content; `head` are the events read so far."""

    target: Target
    pair: Pair
    head: list[StreamEvent]
    rest: AsyncIterator[StreamEvent]
    attempts: list[Attempt]

    async def aclose(self) -> None:
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


class ClientFacingError(Exception):
    """An upstream answer that goes back to the client as-is (invalid request, refusal)."""

    def __init__(self, error: UpstreamError, pair: Pair, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(error.message)
        self.error = error
        self.pair = pair
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class _Plan:
    target: Target
    provider: ProviderConfig
    pair: Pair


class FallbackRunner:
    """Walks chains for one app: holds the config and the pooled upstream transports."""

    def __init__(self, config: Config, upstreams: Upstreams, health: HealthRegistry) -> None:
        self._config = config
        self._upstreams = upstreams
        self._health = health

    async def complete(self, job: Job) -> Completed:
        attempts: list[Attempt] = []
        last: UpstreamError | None = None
        deadline = time.monotonic() + self._config.proxy.total_timeout
        for target in job.decision.chain:
            plan = self._plan(job, target, attempts)
            if plan is None:
                continue
            started = time.monotonic()
            try:
                upstream_body = await self._within(
                    deadline, plan, self._upstreams.transport(plan.provider).complete(
                        self._request(job, plan)
                    )
                )
                body = plan.pair.response(upstream_body, target.model)
            except UpstreamError as error:
                last = error
                attempts.append(_failed(target, error, started))
                self._log_failure(job, target, error)
                if error.error_class not in FALLBACK_CLASSES:
                    raise ClientFacingError(error, plan.pair, tuple(attempts)) from error
                if time.monotonic() >= deadline:
                    break
                continue
            attempts.append(Attempt(target, 200, None, _ms(started)))
            return Completed(target, body, tuple(attempts))
        raise ChainExhaustedError(tuple(attempts), last)

    async def open_stream(self, job: Job) -> OpenedStream:
        attempts: list[Attempt] = []
        last: UpstreamError | None = None
        deadline = time.monotonic() + self._config.proxy.total_timeout
        for target in job.decision.chain:
            plan = self._plan(job, target, attempts)
            if plan is None:
                continue
            started = time.monotonic()
            events = self._upstreams.transport(plan.provider).stream(self._request(job, plan))
            try:
                head = await self._within(deadline, plan, _read_head(events))
            except UpstreamError as error:
                await events.aclose()
                last = error
                attempts.append(_failed(target, error, started))
                self._log_failure(job, target, error)
                if error.error_class not in FALLBACK_CLASSES:
                    raise ClientFacingError(error, plan.pair, tuple(attempts)) from error
                if time.monotonic() >= deadline:
                    break
                continue
            except BaseException:
                await events.aclose()
                raise
            attempts.append(Attempt(target, 200, None, _ms(started)))
            return OpenedStream(target, plan.pair, head, events, attempts)
        raise ChainExhaustedError(tuple(attempts), last)

    def _plan(self, job: Job, target: Target, attempts: list[Attempt]) -> _Plan | None:
        provider = self._config.provider(target.provider)
        if provider is None:  # validated at load; kept for configs swapped at runtime
            attempts.append(Attempt(target, None, ErrorClass.UNAVAILABLE, 0.0, "unknown provider"))
            return None
        translators = pair(job.client_format, provider.format)
        if translators is None or not self._upstreams.has(provider):
            detail = f"provider format '{provider.format}' is not supported yet"
            attempts.append(Attempt(target, None, ErrorClass.UNAVAILABLE, 0.0, detail))
            return None
        return _Plan(target, provider, translators)

    @staticmethod
    def _request(job: Job, plan: _Plan) -> UpstreamRequest:
        body = plan.pair.request(job.body, plan.target.model)
        if job.stream:
            body["stream"] = True
            if plan.provider.format == WireFormat.OPENAI:
                body["stream_options"] = {"include_usage": True}
        return UpstreamRequest(
            target=plan.target,
            provider=plan.provider,
            body=body,
            stream=job.stream,
            forward_headers=job.forward_headers if plan.pair.same_format else {},
            input_tokens=job.summary.token_estimate,
        )

    @staticmethod
    async def _within(deadline: float, plan: _Plan, awaitable: Awaitable[T]) -> T:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeoutError("request deadline reached", target=plan.target)
        try:
            async with asyncio.timeout(remaining):
                return await awaitable
        except TimeoutError as exc:
            if isinstance(exc, UpstreamError):
                raise
            raise UpstreamTimeoutError("request deadline reached", target=plan.target) from exc

    @staticmethod
    def _log_failure(job: Job, target: Target, error: UpstreamError) -> None:
        log.warning(
            "%s failed: %s (%s)%s",
            target,
            error.error_class.value,
            error.status if error.status is not None else "no status",
            "" if error.error_class in FALLBACK_CLASSES else "; returned to the client",
        )


async def _read_head(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    """Events up to and including the first one that carries content (or the finish)."""
    head: list[StreamEvent] = []
    async for event in events:
        head.append(event)
        if not isinstance(event, MessageStart | UsageUpdate):
            return head
    return head


def _failed(target: Target, error: UpstreamError, started: float) -> Attempt:
    return Attempt(target, error.status, error.error_class, _ms(started), error.message[:200])


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


__all__ = [
    "ChainExhaustedError",
    "ClientFacingError",
    "Completed",
    "FallbackRunner",
    "Job",
    "OpenedStream",
    "UpstreamUnavailable",
]
