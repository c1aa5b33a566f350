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
With a shared backend (`proxy.state`), `peers` hears of every breaker or cooldown change and
decides which instance may send a half-open probe; what other instances saw arrives through
`apply_shared` and `set_peer_outcomes`. Routing reads local memory only, never the network.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Protocol

from proxy.frozen import frozen
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


@frozen
class HealthSettings:
    failure_threshold: int = 3
    open_seconds: float = 5.0
    config_error_cooldown: float = 300.0
    quota_cooldown: float = 3600.0
    window: int = 50
    """How many recent outcomes feed the success rate and latency figures."""


@frozen
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
    failing_for: float | None = None
    """Seconds since the breaker opened; None while it is closed."""


@frozen
class Outcome:
    ok: bool
    latency_ms: float
    ttft_ms: float | None


@frozen
class SharedHealth:
    """One target's breaker and cooldown as other instances see it, in wall-clock seconds.

    `version` is when the state last changed (wall clock): the newer state wins."""

    version: float
    opened_at: float | None
    cooldown_until: float
    reason: str


class HealthPeers(Protocol):
    """The other instances sharing this registry's targets (see `proxy.state`)."""

    def changed(self, target: Target) -> None:
        """`target`'s breaker or cooldown changed here; tell the others (never blocks)."""
        ...

    def may_probe(self, target: Target) -> bool:
        """Whether this instance holds the one half-open probe of `target`."""
        ...


class _Health:
    """One target's mutable health (a plain class: dataclasses' import alone costs half the
    interpreter's start-up, and `llmproxy route test` builds a registry)."""

    __slots__ = (
        "consecutive_failures",
        "cooldown_until",
        "opened_at",
        "probe_in_flight",
        "reason",
        "recent",
        "requests",
        "version",
    )

    def __init__(self, recent: deque[Outcome] | None = None) -> None:
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.cooldown_until = 0.0
        self.reason = ""
        self.probe_in_flight = False
        self.requests = 0
        self.recent: deque[Outcome] = deque() if recent is None else recent
        self.version = 0.0
        """Wall-clock time of the last breaker or cooldown change, here or applied from a
        peer."""


MAX_TRACKED = 1000
"""Targets whose health is kept: a `"*"` provider lets clients name any model, and each name
would otherwise be kept forever."""


class HealthRegistry:
    def __init__(
        self,
        settings: HealthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or HealthSettings()
        self._clock = clock
        self._wall = wall
        self._targets: dict[Target, _Health] = {}
        self._peer_outcomes: Mapping[Target, tuple[Outcome, ...]] = {}
        self.peers: HealthPeers | None = None

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
        if self.peers is not None and not self.peers.may_probe(target):
            return "circuit half-open: another instance probes"
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
    ) -> None:
        health = self._get(target)
        unsettled = health.opened_at is not None or health.cooldown_until > 0 or health.reason
        health.requests += 1
        health.consecutive_failures = 0
        health.opened_at = None
        health.probe_in_flight = False
        health.cooldown_until = 0.0
        health.reason = ""
        health.recent.append(Outcome(True, latency_ms, ttft_ms))
        if unsettled:
            self._changed(target, health)

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
        health.recent.append(Outcome(False, latency_ms, None))
        reason = f"{error_class.value}{': ' + detail if detail else ''}"
        now = self._clock()
        before = (health.opened_at, health.cooldown_until)
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
        if (health.opened_at, health.cooldown_until) != before:
            self._changed(target, health)

    def _changed(self, target: Target, health: _Health) -> None:
        health.version = self._wall()
        if self.peers is not None:
            self.peers.changed(target)

    @staticmethod
    def _cool(health: _Health, until: float, reason: str) -> None:
        if until > health.cooldown_until:
            health.cooldown_until = until
            health.reason = reason

    # --- shared with other instances (proxy.state) ----------------------------------------------

    def shared(self, target: Target) -> SharedHealth:
        health = self._targets.get(target) or _Health()
        offset = self._wall() - self._clock()
        opened = None if health.opened_at is None else health.opened_at + offset
        cooling = health.cooldown_until + offset if health.cooldown_until else 0.0
        return SharedHealth(health.version, opened, cooling, health.reason)

    def apply_shared(self, target: Target, shared: SharedHealth) -> bool:
        """Take another instance's newer state of `target`; False when ours is as new."""
        health = self._targets.get(target)
        if health is not None and health.version >= shared.version:
            return False
        health = self._get(target)
        offset = self._wall() - self._clock()
        health.version = shared.version
        health.opened_at = None if shared.opened_at is None else shared.opened_at - offset
        health.cooldown_until = max(0.0, shared.cooldown_until - offset)
        health.reason = shared.reason
        health.consecutive_failures = self.settings.failure_threshold if shared.opened_at else 0
        return True

    def unsettled(self) -> list[Target]:
        """Targets with an open breaker or a cooldown (what a resync must publish again)."""
        return [t for t, h in self._targets.items() if h.opened_at is not None or h.reason]

    def outcomes(self) -> dict[Target, tuple[Outcome, ...]]:
        """This instance's recent outcomes per target, for the others' figures."""
        return {t: tuple(h.recent) for t, h in self._targets.items() if h.recent}

    def set_peer_outcomes(self, outcomes: Mapping[Target, Iterable[Outcome]]) -> None:
        """Other instances' recent outcomes: they join ours in `status` (success rate, speed)."""
        window = self.settings.window
        self._peer_outcomes = {t: tuple(o)[-window:] for t, o in outcomes.items()}

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
        peer = self._peer_outcomes.get(target, ())
        recent = [*health.recent, *peer]
        successes = [o for o in recent if o.ok]
        return TargetStatus(
            target=target,
            state=state,
            cooldown_left=max(0.0, health.cooldown_until - now),
            reason=health.reason,
            requests=health.requests + len(peer),
            success_rate=len(successes) / len(recent) if recent else None,
            latency_ms=_median([o.latency_ms for o in successes]),
            ttft_ms=_median([o.ttft_ms for o in successes if o.ttft_ms is not None]),
            failing_for=None if health.opened_at is None else now - health.opened_at,
        )

    def snapshot(self) -> list[TargetStatus]:
        seen = dict.fromkeys([*self._targets, *self._peer_outcomes])
        return [self.status(target) for target in seen]


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
