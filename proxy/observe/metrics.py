"""`GET /metrics`: Prometheus text made by `prometheus-client`, one registry per app.

Names and labels follow OpenTelemetry's GenAI semantic conventions (v1.36) where they define
one, in their Prometheus spelling: `gen_ai_client_token_usage` and
`gen_ai_client_operation_duration_seconds` (histograms labelled `gen_ai_operation_name`,
`gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model`, `gen_ai_token_type`)
and `gen_ai_server_time_to_first_token_seconds`. What the conventions do not cover (routes,
attempts, fallbacks, breakers, cost) is `llmproxy_*`.

The request path only adds to plain numbers (`Metrics.observe`: a dict lookup, a few additions
and a bisect per histogram, no lock); the families are built from them at scrape time by custom
collectors, prometheus-client's documented way to export values kept elsewhere. Its own
`Counter.labels().inc()` takes a lock and a label lookup per call, which cost more than the rest
of a request's record. Breaker state and cooldowns are read from the health registry at scrape
time too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from proxy.health import BreakerState, TargetStatus
from proxy.observe.record import REFUSED, RequestRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# OpenTelemetry's advised buckets for these histograms (gen-ai-metrics.md).
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
BREAKER_VALUES = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}
SERIES_LIMIT = 2000
OTHER = "other"
GENAI = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
)
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")


class Metrics:
    def __init__(self, health: Callable[[], list[TargetStatus]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._series: dict[SeriesKey, _Series] = {}
        self._attempts: dict[tuple[str, str, str], int] = {}
        """Provider, model, outcome class: strings, hashed in C (a `Target` hashes in Python)."""
        self._rate_limited: dict[str, int] = {}
        self.registry.register(_RequestCollector(self))
        self.registry.register(_HealthCollector(health))

    def observe(self, record: RequestRecord) -> None:
        self.observe_all((record,))

    def observe_all(self, records: Iterable[RequestRecord]) -> None:
        """Plain additions only (see the module docstring), in one loop over the batch with
        what it reads bound once: a call per record and its lookups were a fifth of it."""
        all_series = self._series
        attempts = self._attempts
        limited = self._rate_limited
        bucket = bisect_left
        durations, tokens_buckets = DURATION_BUCKETS, TOKEN_BUCKETS
        for record in records:
            if record.outcome == REFUSED and record.status == 429:
                limited[record.client_api] = limited.get(record.client_api, 0) + 1
            served = record.served
            key = (
                record.route,
                record.client_api,
                served.provider if served else "",
                served.model if served else "",
                record.status,
                record.outcome,
                record.requested_model,
                record.error,
            )
            series = all_series.get(key)
            if series is None:
                series = self._new_series(key)
            series.requests += 1
            tried = record.attempts
            if len(tried) == 1 and tried[0].target is served and tried[0].error_class is None:
                # Most requests: one attempt, of the served target, that answered. Counted by
                # its series, which names the target; added to `_attempts` at scrape time.
                series.answered_alone += 1
                tried = ()
            for attempt in tried:
                error = attempt.error_class
                target = attempt.target
                akey = (target.provider, target.model, "ok" if error is None else error.value)
                attempts[akey] = attempts.get(akey, 0) + 1
            if not record.route:
                continue
            series.fallbacks += record.fallbacks
            series.takeovers += record.takeovers
            # `_Histogram.observe` written out: three method calls were a fifth of this loop.
            seconds = record.total_ms / 1000.0
            histogram = series.duration
            histogram.counts[bucket(durations, seconds)] += 1
            histogram.total += seconds
            if served is None:
                continue
            usage = record.usage
            tokens = series.tokens
            tokens[0] += usage.input_tokens
            tokens[1] += usage.output_tokens
            tokens[2] += usage.cache_read_input_tokens
            tokens[3] += usage.cache_creation_input_tokens
            count = (
                usage.input_tokens
                + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens
            )
            histogram = series.input_usage
            histogram.counts[bucket(tokens_buckets, count)] += 1
            histogram.total += count
            count = usage.output_tokens
            histogram = series.output_usage
            histogram.counts[bucket(tokens_buckets, count)] += 1
            histogram.total += count
            if record.cost:
                series.cost += record.cost
            if record.ttft_ms is not None:
                if series.ttft is None:  # made on the first stream: no empty series for the rest
                    series.ttft = _Histogram(TTFT_BUCKETS)
                series.ttft.observe(record.ttft_ms / 1000.0)

    def _new_series(self, key: SeriesKey) -> _Series:
        if len(self._series) >= SERIES_LIMIT:
            # The requested model is the client's to choose: bound what it can create.
            key = (*key[:6], OTHER, key[7])
            series = self._series.get(key)
            if series is not None:
                return series
        series = self._series[key] = _Series(key)
        return series

    def watch_state(self, up: Callable[[], bool]) -> None:
        """`[state]`: whether the shared backend answers (`proxy.state`)."""
        gauge = Gauge(
            "llmproxy_shared_state_up",
            "1 while the state backend answers (memory "
            "always does); 0 while Redis does not and this instance runs on local "
            "state.",
            registry=self.registry,
        )
        gauge.set_function(lambda: 1.0 if up() else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


SeriesKey = tuple[str, str, str, str, int, str, str, str]
"""route, client API, provider, served model, status, outcome, requested model, error class."""


class _Histogram:
    """Counts per bucket (not cumulative: one addition per observation) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le`: a value on a bound is in it
        self.total += value

    def add(self, other: _Histogram) -> None:
        for i, count in enumerate(other.counts):
            self.counts[i] += count
        self.total += other.total

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as the text format has them, named as prometheus-client names them."""
        out, running = [], 0
        for name, count in zip(_bucket_names(self.bounds), self.counts, strict=True):
            running += count
            out.append((name, float(running)))
        return out


def _bucket_names(bounds: tuple[float, ...]) -> list[str]:
    go_float = cast(Callable[[float], str], floatToGoString)  # the library leaves it untyped
    return [go_float(bound) for bound in (*bounds, float("inf"))]


@dataclass(slots=True)
class _Series:
    """What one kind of request (a `SeriesKey`) has added up."""

    key: SeriesKey
    requests: int = 0
    answered_alone: int = 0
    """Requests whose one attempt was of the served target and answered (`ok`)."""
    fallbacks: int = 0
    takeovers: int = 0
    duration: _Histogram = field(default_factory=lambda: _Histogram(DURATION_BUCKETS))
    input_usage: _Histogram = field(default_factory=lambda: _Histogram(TOKEN_BUCKETS))
    output_usage: _Histogram = field(default_factory=lambda: _Histogram(TOKEN_BUCKETS))
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Input (without cache), output, cache read, cache write: `TOKEN_TYPES`."""
    cost: float = 0.0
    ttft: _Histogram | None = None


class _RequestCollector(Collector):
    """The request families, summed over the series at scrape time (each family keeps only
    its own labels of a series key)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        series = list(metrics._series.values())
        routed = [s for s in series if s.key[0]]
        served = [s for s in routed if s.key[2]]
        yield _sum_counter(
            CounterMetricFamily(
                "llmproxy_requests",
                "Generation requests by route, client API, served target and HTTP status.",
                labels=["route", "client_api", "provider", "model", "status", "outcome"],
            ),
            (((*s.key[:4], str(s.key[4]), s.key[5]), s.requests) for s in series),
        )
        attempts = CounterMetricFamily(
            "llmproxy_attempts",
            "Upstream attempts by target and outcome class.",
            labels=["provider", "model", "outcome"],
        )
        counts = dict(metrics._attempts)
        for s in series:
            if s.answered_alone:
                key = (s.key[2], s.key[3], "ok")
                counts[key] = counts.get(key, 0) + s.answered_alone
        for (provider, model, outcome), count in counts.items():
            attempts.add_metric([provider, model, outcome], count)
        yield attempts
        yield _sum_counter(
            CounterMetricFamily(
                "llmproxy_fallbacks", "Targets given up on before one answered.", labels=["route"]
            ),
            (((s.key[0],), s.fallbacks) for s in routed),
        )
        yield _sum_counter(
            CounterMetricFamily(
                "llmproxy_midstream_takeovers",
                "Streams continued on another target after they had started.",
                labels=["route"],
            ),
            (((s.key[0],), s.takeovers) for s in routed),
        )
        # The name predates "refusal" meaning only a model declining: kept for dashboards.
        limited = CounterMetricFamily(
            "llmproxy_rate_limit_refusals",
            "Requests rejected by llmproxy's own rate limits.",
            labels=["client_api"],
        )
        for api, count in metrics._rate_limited.items():
            limited.add_metric([api], count)
        yield limited
        yield _sum_counter(
            CounterMetricFamily(
                "llmproxy_tokens",
                "Tokens by served target and type (input excludes cache).",
                labels=["provider", "model", "type"],
            ),
            (
                ((s.key[2], s.key[3], kind), s.tokens[i])
                for s in served
                for i, kind in enumerate(TOKEN_TYPES)
            ),
        )
        yield _sum_counter(
            CounterMetricFamily(
                "llmproxy_cost_usd",
                "Cost in US dollars by served target.",
                labels=["provider", "model"],
            ),
            (((s.key[2], s.key[3]), s.cost) for s in served),
        )
        yield _sum_histogram(
            HistogramMetricFamily(
                "gen_ai_client_token_usage",
                "Input and output tokens per request (OpenTelemetry gen_ai.client.token.usage).",
                labels=[*GENAI, "gen_ai_token_type"],
            ),
            TOKEN_BUCKETS,
            (
                ((*_genai(s.key), kind), histogram)
                for s in served
                for kind, histogram in (("input", s.input_usage), ("output", s.output_usage))
            ),
        )
        yield _sum_histogram(
            HistogramMetricFamily(
                "gen_ai_client_operation_duration_seconds",
                "Whole request duration (OpenTelemetry gen_ai.client.operation.duration).",
                labels=[*GENAI, "error_type"],
            ),
            DURATION_BUCKETS,
            (((*_genai(s.key), s.key[7]), s.duration) for s in routed),
        )
        yield _sum_histogram(
            HistogramMetricFamily(
                "gen_ai_server_time_to_first_token_seconds",
                "Time to the first streamed token (OpenTelemetry "
                "gen_ai.server.time_to_first_token).",
                labels=list(GENAI),
            ),
            TTFT_BUCKETS,
            ((_genai(s.key), s.ttft) for s in served if s.ttft is not None),
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _genai(key: SeriesKey) -> tuple[str, str, str, str]:
    return ("chat", key[2], key[6], key[3])


def _sum_counter(
    family: CounterMetricFamily, values: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    totals: dict[tuple[str, ...], float] = {}
    for labels, value in values:
        totals[labels] = totals.get(labels, 0) + value
    for labels, value in totals.items():
        family.add_metric(list(labels), value)
    return family


def _sum_histogram(
    family: HistogramMetricFamily,
    bounds: tuple[float, ...],
    values: Iterable[tuple[tuple[str, ...], _Histogram]],
) -> HistogramMetricFamily:
    totals: dict[tuple[str, ...], _Histogram] = {}
    for labels, histogram in values:
        total = totals.get(labels)
        if total is None:
            total = totals[labels] = _Histogram(bounds)
        total.add(histogram)
    for labels, total in totals.items():
        family.add_metric(list(labels), total.buckets(), total.total)
    return family


class _HealthCollector(Collector):
    def __init__(self, health: Callable[[], list[TargetStatus]]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "llmproxy_breaker_state",
            "Circuit breaker per target: 0 closed, 1 half-open (one probe allowed), 2 open.",
            labels=["provider", "model"],
        )
        cooldown = GaugeMetricFamily(
            "llmproxy_cooldown_seconds",
            "Seconds until a cooling target (rate limit, quota, config error) is tried again.",
            labels=["provider", "model"],
        )
        for status in self._health():
            labels = [status.target.provider, status.target.model]
            state.add_metric(labels, BREAKER_VALUES[status.state])
            cooldown.add_metric(labels, status.cooldown_left)
        yield state
        yield cooldown

    def describe(self) -> Iterator[Metric]:
        return iter(())
