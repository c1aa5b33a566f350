"""The health registry on its own, with a fake clock: breaker, cooldowns, probes, read-outs."""

from __future__ import annotations

from proxy.health import BreakerState, HealthRegistry, HealthSettings, Outcome
from proxy.state.health_sync import _outcome, _outcome_row
from proxy.types import ErrorClass, Target

ZAI = Target("zai", "glm-5")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry(clock: Clock, **settings: float) -> HealthRegistry:
    return HealthRegistry(
        HealthSettings(failure_threshold=3, open_seconds=5.0, **settings), clock=clock
    )


def test_breaker_opens_after_threshold_and_admits_one_probe_when_half_open() -> None:
    clock = Clock()
    health = registry(clock)
    for _ in range(2):
        health.record_failure(ZAI, ErrorClass.SERVER_ERROR)
    assert health.skip_reason(ZAI) is None
    health.record_failure(ZAI, ErrorClass.TIMEOUT)
    assert health.status(ZAI).state is BreakerState.OPEN
    assert (health.skip_reason(ZAI) or "").startswith("circuit open")
    clock.now += 5.1
    assert health.status(ZAI).state is BreakerState.HALF_OPEN
    assert health.skip_reason(ZAI) is None  # the probe
    assert health.skip_reason(ZAI) == "circuit half-open: probe in flight"
    health.record_success(ZAI, 120.0)
    assert health.status(ZAI).state is BreakerState.CLOSED
    assert health.skip_reason(ZAI) is None


def test_failed_probe_reopens_the_breaker_at_once() -> None:
    clock = Clock()
    health = registry(clock)
    for _ in range(3):
        health.record_failure(ZAI, ErrorClass.SERVER_ERROR)
    clock.now += 5.1
    assert health.skip_reason(ZAI) is None
    health.record_failure(ZAI, ErrorClass.CONNECTION)
    assert health.status(ZAI).state is BreakerState.OPEN


def test_a_released_probe_slot_can_be_taken_again() -> None:
    clock = Clock()
    health = registry(clock)
    for _ in range(3):
        health.record_failure(ZAI, ErrorClass.SERVER_ERROR)
    clock.now += 6
    assert health.skip_reason(ZAI) is None
    health.release_probe(ZAI)
    assert health.skip_reason(ZAI) is None


def test_rate_limits_and_client_errors_do_not_count_towards_the_breaker() -> None:
    health = registry(Clock())
    for _ in range(10):
        health.record_failure(ZAI, ErrorClass.RATE_LIMITED)
        health.record_failure(ZAI, ErrorClass.INVALID_REQUEST)
        health.record_failure(ZAI, ErrorClass.CONTEXT_LENGTH)
    assert health.status(ZAI).state is BreakerState.CLOSED
    assert health.skip_reason(ZAI) is None


def test_retry_after_cools_the_target_for_exactly_that_long() -> None:
    clock = Clock()
    health = registry(clock)
    health.record_failure(ZAI, ErrorClass.RATE_LIMITED, retry_after=30)
    assert (health.skip_reason(ZAI) or "").startswith("cooling down 30s")
    assert health.recovers_in(ZAI) == 30
    clock.now += 30.01
    assert health.skip_reason(ZAI) is None


def test_quota_uses_the_provider_reset_or_the_long_default() -> None:
    clock = Clock()
    health = registry(clock, quota_cooldown=3600.0)
    health.record_failure(ZAI, ErrorClass.QUOTA_EXHAUSTED, retry_after=120)
    assert health.status(ZAI).cooldown_left == 120
    other = Target("minimax", "MiniMax-M2.5")
    health.record_failure(other, ErrorClass.QUOTA_EXHAUSTED)
    assert health.status(other).cooldown_left == 3600


def test_config_errors_get_the_long_cooldown() -> None:
    health = registry(Clock(), config_error_cooldown=300.0)
    health.record_failure(ZAI, ErrorClass.NOT_FOUND, detail="model retired")
    status = health.status(ZAI)
    assert status.cooldown_left == 300
    assert "model retired" in status.reason


def test_read_outs_summarise_recent_traffic() -> None:
    health = registry(Clock())
    health.record_success(ZAI, 100.0, ttft_ms=40.0)
    health.record_success(ZAI, 300.0, ttft_ms=60.0)
    health.record_failure(ZAI, ErrorClass.RATE_LIMITED)
    status = health.status(ZAI)
    assert status.requests == 3
    assert status.success_rate == 2 / 3
    assert status.latency_ms == 200.0
    assert status.ttft_ms == 50.0
    assert [s.target for s in health.snapshot()] == [ZAI]


def test_peer_figures_are_three_fields_and_old_four_field_rows_still_read() -> None:
    """Redis rows lost the never-measured throughput; an instance still writing it (a rolling
    upgrade) shares its figures all the same."""
    outcome = Outcome(True, 120.0, 40.0)
    assert _outcome_row(outcome) == [True, 120.0, 40.0]
    assert _outcome(_outcome_row(outcome)) == outcome
    assert _outcome([True, 120.0, 40.0, None]) == outcome
