"""Per-target health: circuit breakers, cooldowns and live latency, consulted by the fallback loop.

Rules:
- A failure that counts (server errors, timeouts, connection errors, cut streams) increments the
  target's consecutive failures; at `failure_threshold` the breaker opens for `open_seconds`.
- Cooldowns come from the provider itself (Retry-After on a 429, a quota reset time) or from a
  config error (401/403/404: long cooldown). A cooling target is skipped like an open one.
- After `open_seconds` the breaker is half-open: exactly one request is let through as a probe,
  with one attempt; its success closes the breaker, its failure re-opens it. A failure that
  opens the breaker is never followed by a same-target retry.
- A stream is a success only when it finishes: a target that always dies after its first token
  accumulates failures like any other broken target.
- Skipping is advisory: when every target of a chain is unhealthy the loop still tries the one
  that recovers soonest, so a request is never refused only because of past failures.

All state belongs to one `HealthRegistry`, owned by the app; the clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from proxy.types import ErrorClass, Target

BREAKER_CLASSES = frozenset(
    {
        ErrorClass.SERVER_ERROR,
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECTION,
        ErrorClass.STREAM_CUT,
        ErrorClass.BAD_RESPONSE,
    }
)
CONFIG_ERROR_CLASSES = frozenset({ErrorClass.AUTH, ErrorClass.NOT_FOUND})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    failure_threshold: int = 3
    open_seconds: float = 5.0
    config_error_cooldown: float = 300.0
    quota_cooldown: float = 3600.0
    window: int = 50
    """How many recent outcomes feed the success rate and latency figures."""


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """A read-only view of one target's health, for routing, `providers status` and /health."""

    target: Target
    state: BreakerState
    cooldown_left: float
    reason: str
    requests: int
    success_rate: float | None
    latency_ms: float | None
    ttft_ms: float | None
    tokens_per_second: float | None
    failing_for: float | None = None
    """Seconds since the breaker opened; None while it is closed."""


@dataclass(slots=True)
class _Outcome:
    ok: bool
    latency_ms: float
    ttft_ms: float | None
    tokens_per_second: float | None


@dataclass(slots=True)
class _Health:
    consecutive_failures: int = 0
    opened_at: float | None = None
    cooldown_until: float = 0.0
    reason: str = ""
    probe_in_flight: bool = False
    requests: int = 0
    recent: deque[_Outcome] = field(default_factory=deque)


MAX_TRACKED = 1000
"""Targets whose health is kept: a `"*"` provider lets clients name any model, and each name
would otherwise be kept forever."""


class HealthRegistry:
    def __init__(
        self,
        settings: HealthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or HealthSettings()
        self._clock = clock
        self._targets: dict[Target, _Health] = {}

    def _get(self, target: Target) -> _Health:
        health = self._targets.get(target)
        if health is None:
            if len(self._targets) >= MAX_TRACKED:
                self._forget_one()
            health = self._targets[target] = _Health(recent=deque(maxlen=self.settings.window))
        return health

    def _forget_one(self) -> None:
        """Drop the oldest target that is neither cooling nor open (the oldest of all when every
        one is), so a flood of new names cannot push a failing target back into rotation."""
        now = self._clock()
        for target, health in self._targets.items():
            if health.cooldown_until <= now and health.opened_at is None:
                del self._targets[target]
                return
        del self._targets[next(iter(self._targets))]

    # --- consulted by routing / the fallback loop ---------------------------------------------

    def skip_reason(self, target: Target) -> str | None:
        """Why `target` should not get this request, or None to send it.

        Letting a half-open target through reserves its single probe slot: the caller must
        report the outcome with `record_success` or `record_failure`.
        """
        health = self._targets.get(target)
        if health is None:
            return None
        now = self._clock()
        if health.cooldown_until > now:
            return f"cooling down {health.cooldown_until - now:.0f}s: {health.reason}"
        if health.opened_at is None:
            return None
        if now - health.opened_at < self.settings.open_seconds:
            return f"circuit open: {health.reason}"
        if health.probe_in_flight:
            return "circuit half-open: probe in flight"
        health.probe_in_flight = True
        return None

    def recovers_in(self, target: Target) -> float:
        """Seconds until `target` would be tried again (0 when it would be tried now)."""
        health = self._targets.get(target)
        if health is None:
            return 0.0
        now = self._clock()
        wait = max(0.0, health.cooldown_until - now)
        if health.opened_at is not None:
            wait = max(wait, self.settings.open_seconds - (now - health.opened_at))
        return wait

    def is_open(self, target: Target) -> bool:
        """The breaker is open now (not half-open): nothing may be sent to `target`."""
        health = self._targets.get(target)
        if health is None or health.opened_at is None:
            return False
        return self._clock() - health.opened_at < self.settings.open_seconds

    def release_probe(self, target: Target) -> None:
        """A probe slot was reserved but no request went out (e.g. the deadline passed)."""
        health = self._targets.get(target)
        if health is not None:
            health.probe_in_flight = False

    # --- fed by the fallback loop ---------------------------------------------------------------

    def record_success(
        self,
        target: Target,
        latency_ms: float,
        *,
        ttft_ms: float | None = None,
        tokens_per_second: float | None = None,
    ) -> None:
        health = self._get(target)
        health.requests += 1
        health.consecutive_failures = 0
        health.opened_at = None
        health.probe_in_flight = False
        health.cooldown_until = 0.0
        health.reason = ""
        health.recent.append(_Outcome(True, latency_ms, ttft_ms, tokens_per_second))

    def record_failure(
        self,
        target: Target,
        error_class: ErrorClass,
        *,
        latency_ms: float = 0.0,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        health = self._get(target)
        health.requests += 1
        health.probe_in_flight = False
        health.recent.append(_Outcome(False, latency_ms, None, None))
        reason = f"{error_class.value}{': ' + detail if detail else ''}"
        now = self._clock()
        if error_class == ErrorClass.RATE_LIMITED and retry_after:
            self._cool(health, now + retry_after, reason)
        elif error_class == ErrorClass.QUOTA_EXHAUSTED:
            self._cool(health, now + (retry_after or self.settings.quota_cooldown), reason)
        elif error_class in CONFIG_ERROR_CLASSES:
            self._cool(health, now + self.settings.config_error_cooldown, reason)
        if error_class in BREAKER_CLASSES:
            health.consecutive_failures += 1
            if (
                health.opened_at is not None
                or health.consecutive_failures >= self.settings.failure_threshold
            ):
                health.opened_at = now
                health.reason = reason

    @staticmethod
    def _cool(health: _Health, until: float, reason: str) -> None:
        if until > health.cooldown_until:
            health.cooldown_until = until
            health.reason = reason

    # --- read-outs ------------------------------------------------------------------------------

    def status(self, target: Target) -> TargetStatus:
        health = self._targets.get(target) or _Health()
        now = self._clock()
        if health.opened_at is None:
            state = BreakerState.CLOSED
        elif now - health.opened_at < self.settings.open_seconds:
            state = BreakerState.OPEN
        else:
            state = BreakerState.HALF_OPEN
        recent = list(health.recent)
        successes = [o for o in recent if o.ok]
        return TargetStatus(
            target=target,
            state=state,
            cooldown_left=max(0.0, health.cooldown_until - now),
            reason=health.reason,
            requests=health.requests,
            success_rate=len(successes) / len(recent) if recent else None,
            latency_ms=_median([o.latency_ms for o in successes]),
            ttft_ms=_median([o.ttft_ms for o in successes if o.ttft_ms is not None]),
            tokens_per_second=_median(
                [o.tokens_per_second for o in successes if o.tokens_per_second is not None]
            ),
            failing_for=None if health.opened_at is None else now - health.opened_at,
        )

    def snapshot(self) -> list[TargetStatus]:
        return [self.status(target) for target in self._targets]


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
