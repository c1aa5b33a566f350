"""Rate limits: token buckets per client key and across all clients.

Each scope (one client key, or everyone) may limit requests per minute, concurrent requests and
estimated input tokens per minute. A bucket holds a minute's allowance and refills continuously,
so a burst of N passes and the N+1th waits for 60/N seconds. A request that costs more tokens
than a bucket holds passes when the bucket is full and leaves it in debt, so it is delayed,
never refused forever. A refused request costs nothing: every bucket is checked before any is
charged.

`RateLimiter` is the seam for a shared backend (`proxy.state.ratelimit` keeps the same
buckets in Redis); `MemoryRateLimiter` serves one process. Excess requests get 429 with
`Retry-After` (whole seconds) in the client's dialect.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.frozen import frozen
from proxy.security.auth import ANONYMOUS, CLIENT
from proxy.security.limits import BODY, off_loop
from proxy.security.rejections import dialect_for, error_response
from proxy.security.settings import Rate, RateLimitSettings
from proxy.tokens import TokenEstimator
from proxy.types import ClientAPI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], float]

LIMITED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/messages/count_tokens"}
)
UNBILLED_PATHS = frozenset({"/v1/messages/count_tokens"})
"""Limited by requests and concurrency, not tokens: no provider is asked."""
CONCURRENCY_RETRY_AFTER = 1.0


class RateLimited(Exception):
    def __init__(self, scope: str, dimension: str, retry_after: float) -> None:
        super().__init__(f"{scope} {dimension} limit reached")
        self.scope = scope
        self.dimension = dimension
        self.retry_after = retry_after


class LimitsUnavailable(Exception):
    """The shared limits cannot be consulted and the config says to refuse meanwhile."""


class Lease(Protocol):
    async def release(self) -> None:
        """End the request (frees its concurrency slot). Safe to call twice."""
        ...


class RateLimiter(Protocol):
    async def acquire(self, client: str, tokens: int) -> Lease:
        """Admit one request from `client` costing `tokens`, or raise RateLimited."""
        ...


@dataclass(slots=True)
class Bucket:
    capacity: float
    per_second: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, amount: int, now: float) -> Bucket:
        return cls(float(amount), amount / 60.0, float(amount), now)

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(self.capacity, self.level + elapsed * self.per_second)
        self.updated = now

    def wait(self, cost: float) -> float:
        """Seconds until `cost` may be taken (0 if now); call `refill` first."""
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.per_second

    def take(self, cost: float) -> None:
        self.level -= cost


@dataclass(slots=True)
class _Scope:
    name: str
    rate: Rate
    requests: Bucket | None
    tokens: Bucket | None
    in_flight: int = 0

    @classmethod
    def new(cls, name: str, rate: Rate, now: float) -> _Scope:
        rpm, tpm = rate.requests_per_minute, rate.tokens_per_minute
        return cls(
            name,
            rate,
            Bucket.per_minute(rpm, now) if rpm else None,
            Bucket.per_minute(tpm, now) if tpm else None,
        )

    def waits(self, tokens: int, now: float) -> list[tuple[str, float]]:
        found = []
        limit = self.rate.concurrent_requests
        if limit is not None and self.in_flight >= limit:
            found.append(("concurrent requests", CONCURRENCY_RETRY_AFTER))
        for dimension, bucket, cost in (
            ("requests per minute", self.requests, 1),
            ("tokens per minute", self.tokens, tokens),
        ):
            if bucket is not None and cost > 0:
                bucket.refill(now)
                if (wait := bucket.wait(cost)) > 0:
                    found.append((dimension, wait))
        return found

    def charge(self, tokens: int) -> None:
        self.in_flight += 1
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)


@dataclass(slots=True)
class _MemoryLease:
    scopes: tuple[_Scope, ...]
    released: bool = field(default=False)

    async def release(self) -> None:
        if not self.released:
            self.released = True
            for scope in self.scopes:
                scope.in_flight -= 1


class MemoryRateLimiter:
    """Buckets in this process; one per client id seen (ids are bounded by the config)."""

    def __init__(self, settings: RateLimitSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._clients: dict[str, _Scope] = {}
        self._overall = _Scope.new("global", settings.overall, clock())

    async def acquire(self, client: str, tokens: int) -> Lease:
        now = self._clock()
        scope = self._clients.get(client)
        if scope is None:
            scope = self._clients[client] = _Scope.new("client", self._settings.per_client, now)
        scopes = (scope, self._overall)
        refusals = [(s.name, dim, wait) for s in scopes for dim, wait in s.waits(tokens, now)]
        if refusals:
            name, dimension, wait = max(refusals, key=lambda r: r[2])
            raise RateLimited(name, dimension, wait)
        for s in scopes:
            s.charge(tokens)
        return _MemoryLease(scopes)


@frozen
class TokenCount:
    """The estimate the limiter charged, kept so the handler does not estimate the same body
    again (`proxy.summary.summarize` takes it): estimating a Claude Code request costs as much
    as translating it."""

    body: object
    fmt: ClientAPI
    tokens: int

    def of(self, body: object, fmt: ClientAPI) -> int | None:
        return self.tokens if body is self.body and fmt is self.fmt else None


TOKEN_COUNT = web.RequestKey("llmproxy_token_count", TokenCount)


def rate_limit_middleware(limiter: RateLimiter, *, tokens: TokenEstimator | None) -> Middleware:
    """`tokens`: how requests are charged by estimated input tokens (None: not charged)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path not in LIMITED_PATHS:
            return await handler(request)
        charged = 0
        if tokens is not None and request.path not in UNBILLED_PATHS:
            request[TOKEN_COUNT] = count = await off_loop(request, _estimate, request, tokens)
            charged = count.tokens
        try:
            lease = await limiter.acquire(request.get(CLIENT, ANONYMOUS), charged)
        except RateLimited as exc:
            seconds = max(1, math.ceil(exc.retry_after))
            return error_response(
                request,
                429,
                f"llmproxy rate limit reached ({exc.scope} {exc.dimension}); "
                f"retry after {seconds}s",
                code="rate_limit_exceeded",
                headers={"retry-after": str(seconds)},
            )
        except LimitsUnavailable as exc:
            return error_response(
                request,
                503,
                f"llmproxy: {exc}; retry shortly",
                code="rate_limits_unavailable",
                headers={"retry-after": "1"},
            )
        try:
            return await handler(request)
        finally:
            await lease.release()

    return middleware


def _estimate(request: web.Request, tokens: TokenEstimator) -> TokenCount:
    body = request.get(BODY)
    fmt = dialect_for(request).format
    return TokenCount(body, fmt, tokens.request_tokens(body, fmt) if isinstance(body, dict) else 0)
