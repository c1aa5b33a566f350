"""Ranked aliases: a mapping whose `to` is `@cheapest`, `@fastest` or `@best` orders its
candidate targets per request, then the result is walked as a normal fallback chain.

- `@cheapest`: by blended price (3 input : 1 output tokens, from the capabilities); targets
  without a known price come last; equal prices go to the faster target.
- `@fastest`: by live speed from real traffic (`HealthRegistry.status`): the median time its
  successful requests took to the end of the answer, streams included. Targets that have not
  been tried yet come first, in candidate order, so each gets measured once; targets that have
  only failed come last.
- `@best`: the most reliable first (recent success rate; untried counts as reliable), then the
  fastest. A ranking over quality would need a quality signal we do not have.

Ties keep the candidates' configured order. Ranking reads health, never changes it: routing
stays pure, and the fallback loop still skips open breakers and cooling targets.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from proxy.capabilities import ModelCapabilities
from proxy.health import TargetStatus
from proxy.types import Chain, Target


class Ranking(StrEnum):
    CHEAPEST = "@cheapest"
    FASTEST = "@fastest"
    BEST = "@best"


class HealthView(Protocol):
    """The read-only part of `proxy.health.HealthRegistry` that routing may look at."""

    def status(self, target: Target) -> TargetStatus: ...


def parse_ranking(text: str) -> Ranking | None:
    """The ranking a mapping's `to` names, None for a plain chain; ValueError for `@unknown`."""
    value = text.strip()
    if not value.startswith("@"):
        return None
    try:
        return Ranking(value.lower())
    except ValueError:
        known = ", ".join(r.value for r in Ranking)
        raise ValueError(f"unknown ranking {value!r} (known: {known})") from None


def rank(
    candidates: Chain,
    ranking: Ranking,
    capabilities: Callable[[Target], ModelCapabilities],
    health: HealthView | None,
) -> tuple[Chain, str]:
    """The candidates in ranked order, and a short phrase saying why (for the Decision)."""
    speeds = {t: _speed(t, health) for t in candidates}
    if ranking is Ranking.CHEAPEST:
        prices = {t: capabilities(t).blended_price for t in candidates}
        ordered = sorted(
            candidates,
            key=lambda t: (prices[t] is None, prices[t] or 0.0, speeds[t][0], speeds[t][1]),
        )
        return tuple(ordered), ", ".join(f"{t} {_price(prices[t])}" for t in ordered)
    if ranking is Ranking.FASTEST:
        ordered = sorted(candidates, key=lambda t: speeds[t])
        return tuple(ordered), ", ".join(f"{t} {_speed_text(speeds[t])}" for t in ordered)
    rates = {t: _success_rate(t, health) for t in candidates}
    ordered = sorted(candidates, key=lambda t: (-rates[t], speeds[t]))
    return tuple(ordered), ", ".join(
        f"{t} ({rates[t]:.0%} ok) {_speed_text(speeds[t])}" for t in ordered
    )


def _speed(target: Target, health: HealthView | None) -> tuple[int, float]:
    """A sort key: (0 untried, 1 measured, 2 failed only) then milliseconds."""
    if health is None:
        return (0, 0.0)
    status = health.status(target)
    if status.latency_ms is not None:  # the median over successes: whole answers, streams too
        return (1, status.latency_ms)
    return (0, 0.0) if status.requests == 0 else (2, 0.0)


def _success_rate(target: Target, health: HealthView | None) -> float:
    if health is None:
        return 1.0
    rate = health.status(target).success_rate
    return 1.0 if rate is None else rate


def _price(blended: float | None) -> str:
    return "(price unknown)" if blended is None else f"(${blended:.2f}/M blended)"


def _speed_text(speed: tuple[int, float]) -> str:
    kind, ms = speed
    return ("(untried)", f"({ms:.0f} ms)", "(failing)")[kind]
