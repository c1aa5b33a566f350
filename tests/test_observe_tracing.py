"""Optional tracing: a span per request and per attempt with GenAI attributes, exported by the
OpenTelemetry SDK (here to its in-memory exporter)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support import CLIENT_KEY, config_text

from proxy.appkeys import OBSERVER
from proxy.config import parse_config
from proxy.observe.tracing import Tracer, make_tracer, tracer_from_env
from proxy.server import build_app
from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated

otel = pytest.importorskip(
    "opentelemetry.sdk.trace.export.in_memory_span_exporter",
    reason="the otel extra (part of the test extra) is not installed",
)


def test_tracing_is_on_only_with_an_endpoint() -> None:
    assert tracer_from_env({}) is None
    tracer = tracer_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert isinstance(tracer, Tracer)
    tracer.close()


@pytest.fixture
async def app_and_url() -> AsyncIterator[tuple[web.Application, str]]:
    sims = [
        SimulatedProvider("zai", "openai", ["glm-5"], plan=FaultPlan([Status(500)] * 2)),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]
    async with run_simulated(sims) as running:
        text = config_text(running, {"default": "zai,glm-5|cerebras,llama-3.3-70b"})
        app = build_app(parse_config(text, env={}), env={})
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield app, str(server.make_url("/v1"))
        finally:
            await server.close()


async def test_a_span_per_request_and_per_attempt_with_genai_attributes(
    app_and_url: tuple[web.Application, str],
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    app, base = app_and_url
    exporter = otel.InMemorySpanExporter()
    app[OBSERVER].tracer = make_tracer(SimpleSpanProcessor(exporter))
    async with openai.AsyncOpenAI(base_url=base, api_key=CLIENT_KEY, max_retries=0) as client:
        completion = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
    app[OBSERVER].flush()  # rather than wait for the batch's timer
    spans = {span.name: [] for span in exporter.get_finished_spans()}
    for span in exporter.get_finished_spans():
        spans[span.name].append(span)
    (request,) = spans["chat auto"]
    attrs = dict(request.attributes or {})
    usage = completion.usage
    assert usage is not None
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "cerebras"
    assert attrs["gen_ai.response.model"] == "llama-3.3-70b"
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["llmproxy.attempts"] == "zai 500 -> zai 500 -> cerebras"
    attempts = sorted(
        [*spans["chat glm-5"], *spans["chat llama-3.3-70b"]], key=lambda s: s.start_time or 0
    )
    assert [dict(s.attributes or {}).get("error.type") for s in attempts] == [
        "server_error",
        "server_error",
        None,
    ]
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in attempts
    )
    assert all(
        request.start_time <= (s.start_time or 0) and (s.end_time or 0) <= (request.end_time or 0)
        for s in attempts
    )
