"""`GET /metrics`: Prometheus text made by `prometheus-client`, one registry per app.

Names and labels follow OpenTelemetry's GenAI semantic conventions (v1.36) where they define
one, in their Prometheus spelling: `gen_ai_client_token_usage` and
`gen_ai_client_operation_duration_seconds` (histograms labelled `gen_ai_operation_name`,
`gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model`, `gen_ai_token_type`)
and `gen_ai_server_time_to_first_token_seconds`. What the conventions do not cover (routes,
attempts, fallbacks, breakers, cost) is `llmproxy_*`.

Breaker state and cooldowns are read from the health registry at scrape time, so nothing is
updated for them on the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy.health import BreakerState, TargetStatus
from proxy.observe.record import REFUSED, RequestRecord
from proxy.types import Attempt, Target

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


class Metrics:
    def __init__(self, health: Callable[[], list[TargetStatus]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmproxy_requests",
            "Generation requests by route, client API, served target and HTTP status.",
            ["route", "client_api", "provider", "model", "status", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "llmproxy_attempts",
            "Upstream attempts by target and outcome class.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.fallbacks = Counter(
            "llmproxy_fallbacks", "Targets given up on before one answered.", ["route"], registry=r
        )
        self.takeovers = Counter(
            "llmproxy_midstream_takeovers",
            "Streams continued on another target after they had started.",
            ["route"],
            registry=r,
        )
        # The metric's name predates the word's one meaning (a model declining): kept for
        # existing dashboards.
        self.rate_limited = Counter(
            "llmproxy_rate_limit_refusals",
            "Requests refused by llmproxy's own rate limits.",
            ["client_api"],
            registry=r,
        )
        self.tokens = Counter(
            "llmproxy_tokens",
            "Tokens by served target and type (input excludes cache).",
            ["provider", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "llmproxy_cost_usd",
            "Cost in US dollars by served target.",
            ["provider", "model"],
            registry=r,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Input and output tokens per request (OpenTelemetry gen_ai.client.token.usage).",
            [*GENAI, "gen_ai_token_type"],
            registry=r,
            buckets=TOKEN_BUCKETS,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Whole request duration (OpenTelemetry gen_ai.client.operation.duration).",
            [*GENAI, "error_type"],
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed token (OpenTelemetry gen_ai.server.time_to_first_token).",
            GENAI,
            registry=r,
            buckets=TTFT_BUCKETS,
        )
        r.register(_HealthCollector(health))
        self._series: dict[tuple[object, ...], _Series] = {}
        self._attempts: dict[tuple[Target, str], Counter] = {}

    def observe(self, record: RequestRecord) -> None:
        if record.outcome == REFUSED and record.status == 429:
            self.rate_limited.labels(record.client_api).inc()
        served = record.served
        provider, model = (served.provider, served.model) if served else ("", "")
        requested = record.requested_model
        key = (
            record.route,
            record.client_api,
            provider,
            model,
            record.status,
            record.outcome,
            requested,
            record.error,
        )
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= SERIES_LIMIT:
                # The requested model is the client's to choose: bound what it can create.
                key = (*key[:6], OTHER, key[7])
                requested = OTHER
                series = self._series.get(key)
            if series is None:
                series = self._series[key] = self._bind(record, provider, model, requested)
        series.requests.inc()
        for attempt in record.attempts:
            self._attempt(attempt).inc()
        if not record.route:
            return
        if record.fallbacks:
            series.fallbacks.inc(record.fallbacks)
        if record.takeovers:
            series.takeovers.inc(record.takeovers)
        series.duration.observe(record.total_ms / 1000.0)
        if served is None:
            return
        usage = record.usage
        series.input_usage.observe(
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
        series.output_usage.observe(usage.output_tokens)
        series.input_tokens.inc(usage.input_tokens)
        series.output_tokens.inc(usage.output_tokens)
        if usage.cache_read_input_tokens:
            series.cache_read_tokens.inc(usage.cache_read_input_tokens)
        if usage.cache_creation_input_tokens:
            series.cache_write_tokens.inc(usage.cache_creation_input_tokens)
        if record.cost:
            series.cost.inc(record.cost)
        if record.ttft_ms is not None:
            if series.ttft is None:  # bound on the first stream: no empty series for the rest
                series.ttft = self.ttft.labels("chat", provider, requested, model)
            series.ttft.observe(record.ttft_ms / 1000.0)

    def _bind(self, record: RequestRecord, provider: str, model: str, requested: str) -> _Series:
        """Every labelled child one kind of request touches, looked up once (prometheus-client's
        `labels()` costs more than the increment itself)."""
        route = record.route
        genai = ("chat", provider, requested, model)
        return _Series(
            requests=self.requests.labels(
                route, record.client_api, provider, model, str(record.status), record.outcome
            ),
            fallbacks=self.fallbacks.labels(route),
            takeovers=self.takeovers.labels(route),
            duration=self.duration.labels(*genai, record.error),
            input_usage=self.token_usage.labels(*genai, "input"),
            output_usage=self.token_usage.labels(*genai, "output"),
            input_tokens=self.tokens.labels(provider, model, "input"),
            output_tokens=self.tokens.labels(provider, model, "output"),
            cache_read_tokens=self.tokens.labels(provider, model, "cache_read"),
            cache_write_tokens=self.tokens.labels(provider, model, "cache_write"),
            cost=self.cost.labels(provider, model),
        )

    def _attempt(self, attempt: Attempt) -> Counter:
        outcome = "ok" if attempt.error_class is None else attempt.error_class.value
        key = (attempt.target, outcome)
        child = self._attempts.get(key)
        if child is None:
            child = self._attempts[key] = self.attempts.labels(
                attempt.target.provider, attempt.target.model, outcome
            )
        return child

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


@dataclass(slots=True)
class _Series:
    requests: Counter
    fallbacks: Counter
    takeovers: Counter
    duration: Histogram
    input_usage: Histogram
    output_usage: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cache_read_tokens: Counter
    cache_write_tokens: Counter
    cost: Counter
    ttft: Histogram | None = None


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
