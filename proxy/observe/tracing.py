"""Optional OpenTelemetry tracing: one span per request, one child span per attempt.

Active only with the `otel` extra installed and `OTEL_EXPORTER_OTLP_ENDPOINT` set (the OTLP/HTTP
exporter reads the rest of the standard `OTEL_*` variables itself). Spans are made from the
finished record, with GenAI semantic-convention attributes (`gen_ai.operation.name`,
`gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`,
`error.type`). An attempt span carries its measured duration; its start is reconstructed by
laying the attempts end to end from the request's start, since a record keeps durations only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from proxy.observe.record import RequestRecord, attempts_path

log = logging.getLogger("llmproxy.observe")
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


class Tracer:
    def __init__(
        self, tracer: Any, trace_api: Any, shutdown: Callable[[], object] | None = None
    ) -> None:
        self._tracer = tracer
        self._trace = trace_api
        self._shutdown = shutdown

    def close(self) -> None:
        """Flush the spans still queued for export."""
        if self._shutdown is not None:
            self._shutdown()

    def export(self, record: RequestRecord) -> None:
        start = int(record.started * 1e9)
        end = start + int(record.total_ms * 1e6)
        served = record.served
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": record.requested_model,
            "http.response.status_code": record.status,
            "llmproxy.request_id": record.id,
            "llmproxy.client_api": record.client_api,
            "llmproxy.route": record.route,
            "llmproxy.attempts": attempts_path(record.attempts),
            "llmproxy.outcome": record.outcome,
        }
        if served is not None:
            usage = record.usage
            attributes.update(
                {
                    "gen_ai.provider.name": served.provider,
                    "gen_ai.response.model": served.model,
                    "gen_ai.usage.input_tokens": usage.input_tokens
                    + usage.cache_read_input_tokens
                    + usage.cache_creation_input_tokens,
                    "gen_ai.usage.output_tokens": usage.output_tokens,
                    "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
                    "gen_ai.usage.cache_creation.input_tokens": usage.cache_creation_input_tokens,
                }
            )
        if record.cost is not None:
            attributes["llmproxy.cost_usd"] = record.cost
        if record.error:
            attributes["error.type"] = record.error
        span = self._tracer.start_span(
            f"chat {record.requested_model}",
            kind=self._trace.SpanKind.SERVER,
            start_time=start,
            attributes=attributes,
        )
        if record.outcome != "ok":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, record.error))
        context = self._trace.set_span_in_context(span)
        offset = start
        for attempt in record.attempts:
            child_attributes: dict[str, Any] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": attempt.target.provider,
                "gen_ai.request.model": attempt.target.model,
                "llmproxy.outcome": attempt.outcome,
            }
            if attempt.status is not None:
                child_attributes["http.response.status_code"] = attempt.status
            if attempt.error_class is not None:
                child_attributes["error.type"] = attempt.error_class.value
            child = self._tracer.start_span(
                f"chat {attempt.target.model}",
                context=context,
                kind=self._trace.SpanKind.CLIENT,
                start_time=offset,
                attributes=child_attributes,
            )
            if attempt.error_class is not None:
                child.set_status(
                    self._trace.Status(self._trace.StatusCode.ERROR, attempt.detail[:200])
                )
            offset += int(attempt.elapsed_ms * 1e6)
            child.end(end_time=min(offset, end))
        span.end(end_time=end)


def tracer_from_env(env: Mapping[str, str]) -> Tracer | None:
    """An OTLP/HTTP exporting tracer when the endpoint variable is set and the `otel` extra is
    installed; else None (a warning when the variable is set but the extra is missing)."""
    if not env.get(ENDPOINT_VARIABLE):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "%s is set but the otel extra is not installed "
            "(pip install 'llmproxy[otel]'); no spans are exported",
            ENDPOINT_VARIABLE,
        )
        return None
    return make_tracer(BatchSpanProcessor(OTLPSpanExporter()))


def make_tracer(processor: Any) -> Tracer:
    """A tracer whose spans go to `processor` (an OpenTelemetry SDK span processor): batched
    OTLP export in the daemon, an in-memory exporter in tests."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "llmproxy"}))
    provider.add_span_processor(processor)
    return Tracer(provider.get_tracer("llmproxy"), trace, provider.shutdown)
