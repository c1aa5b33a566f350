"""Seeing what every request did, through the real daemon: the log line, `x-request-id`, cost,
the journal, `/metrics` and the health endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from support import CLIENT_KEY, config_text, request_lines

from proxy.appkeys import OBSERVER
from proxy.config import parse_config
from proxy.logging_setup import JsonFormatter
from proxy.observe.journal import Query, read_requests, usage_summary
from proxy.observe.metrics import SERIES_LIMIT, Metrics
from proxy.observe.record import RequestRecord
from proxy.server import build_app
from proxy.simulate import (
    CutAfter,
    FaultPlan,
    SimulatedProvider,
    Status,
    openai_insufficient_quota,
    openai_rate_limit,
    run_simulated,
)
from proxy.types import Attempt, ErrorClass, Target, Usage

PROMPT = "Tell me a secret-free story"
FALLBACK = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}
# Prices of the built-in table (USD per million tokens) that the assertions recompute.
LLAMA_PRICE = (0.85, 1.2)


class Observed:
    """The daemon with its journal in a temp state dir, and the app to read the observer."""

    def __init__(self, server: TestServer, app: web.Application) -> None:
        self.server = server
        self.app = app

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def records(self) -> list[RequestRecord]:
        return list(reversed(self.app[OBSERVER].recent.newest(1000)))

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=CLIENT_KEY, max_retries=0)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=CLIENT_KEY, max_retries=0)

    async def flush_journal(self) -> None:
        journal = self.app[OBSERVER].journal
        assert journal is not None
        target = len(self.records())
        for _ in range(200):
            if journal.written + journal.dropped >= target:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"journal wrote {journal.written} of {target}")


@pytest.fixture
async def observed(tmp_path: Path) -> AsyncIterator[list[Observed]]:
    started: list[Observed] = []
    yield started
    for item in started:
        await item.server.close()


async def start(started: list[Observed], text: str, state_dir: Path | None) -> Observed:
    app = build_app(parse_config(text, env={}), state_dir=state_dir, env={})
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    started.append(Observed(server, app))
    return started[-1]


def sims_for_fallback(plan: FaultPlan) -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], plan=plan),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]


async def test_one_line_per_request_with_route_attempts_tokens_cost_and_request_id(
    observed: list[Observed], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmproxy.requests")
    plan = FaultPlan.always(openai_rate_limit(retry_after=30))
    async with run_simulated(sims_for_fallback(plan)) as sims:
        proxy = await start(observed, config_text(sims, FALLBACK), tmp_path)
        async with proxy.openai() as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": PROMPT}]
            )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    lines = await request_lines(caplog, 1)
    assert len(lines) == 1
    line = lines[0].getMessage()
    assert line.startswith(
        f"{request_id} openai once default [zai 429 -> cerebras] => cerebras,llama-3.3-70b 200 "
    )
    usage = completion.usage
    assert usage is not None
    assert f"in={usage.prompt_tokens} out={usage.completion_tokens} cache=0/0" in line
    assert "total=" in line and "(" in line  # the routing reason closes the line
    assert (
        PROMPT not in line
        and CLIENT_KEY not in line
        and completion.choices[0].message.content not in line
    )
    cost = (usage.prompt_tokens * LLAMA_PRICE[0] + usage.completion_tokens * LLAMA_PRICE[1]) / 1e6
    assert float(raw.headers["x-llmproxy-cost"]) == pytest.approx(cost, rel=1e-6)


async def test_the_json_log_format_carries_the_record(
    observed: list[Observed], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmproxy.requests")
    async with run_simulated(sims_for_fallback(FaultPlan())) as sims:
        proxy = await start(observed, config_text(sims, FALLBACK), None)
        async with proxy.openai() as client:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": PROMPT}]
            )
    (line,) = await request_lines(caplog, 1)
    parsed = json.loads(JsonFormatter().format(line))
    assert parsed["level"] == "info" and parsed["logger"] == "llmproxy.requests"
    assert parsed["message"].startswith(parsed["request"]["id"])
    request = parsed["request"]
    assert request["route"] == "default" and request["served"] == "zai,glm-5"
    assert request["path"] == "zai" and request["status"] == 200 and request["cost_usd"] > 0
    assert request["attempts"][0]["target"] == "zai,glm-5"
    assert PROMPT not in json.dumps(parsed)


async def test_every_response_has_a_request_id(observed: list[Observed]) -> None:
    async with run_simulated(sims_for_fallback(FaultPlan())) as sims:
        proxy = await start(observed, config_text(sims, FALLBACK), None)
        async with aiohttp.ClientSession() as http:
            ids = []
            for method, path, body in [
                ("GET", "/health/live", None),
                ("GET", "/nope", None),
                ("POST", "/v1/chat/completions", b"{not json"),
            ]:
                async with http.request(
                    method,
                    proxy.url + path,
                    data=body,
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                ) as r:
                    ids.append(r.headers["x-request-id"])
    assert len(set(ids)) == 3 and all(i.startswith("req_") for i in ids)
    refused = proxy.records()[-1]
    assert (refused.status, refused.outcome, refused.route) == (400, "refused", "")


async def test_streams_record_time_to_first_token_usage_and_the_cost_trailer(
    observed: list[Observed], tmp_path: Path
) -> None:
    async with run_simulated(sims_for_fallback(FaultPlan())) as sims:
        sims["zai"].first_token_delay = 0.15
        proxy = await start(observed, config_text(sims, FALLBACK), tmp_path)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                proxy.url + "/v1/chat/completions",
                json={
                    "model": "auto",
                    "stream": True,
                    "messages": [{"role": "user", "content": PROMPT}],
                },
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            ) as response,
        ):
            text = (await response.read()).decode()
        record = proxy.records()[-1]
    assert record.stream and record.outcome == "ok" and record.served is not None
    assert record.ttft_ms is not None and 150 <= record.ttft_ms <= record.total_ms
    assert record.usage.output_tokens > 0 and record.cost is not None and record.cost > 0
    assert f": x-llmproxy-cost {record.cost:.10f}".rstrip("0") in text


async def test_a_mid_stream_takeover_is_counted_and_priced_with_the_cut_attempt(
    observed: list[Observed], tmp_path: Path
) -> None:
    # Anthropic format: the cut try reports its prompt (in `message_start`) before it dies.
    zai = SimulatedProvider(
        "zai", "anthropic", ["glm-5"], plan=FaultPlan([CutAfter(4)]), persona="glm"
    )
    mirror = SimulatedProvider("zai-mirror", "anthropic", ["glm-5"], persona="glm")
    async with run_simulated([zai, mirror]) as sims:
        proxy = await start(
            observed, config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5"}), tmp_path
        )
        async with (
            proxy.anthropic() as client,
            client.messages.stream(
                model="auto", max_tokens=512, messages=[{"role": "user", "content": PROMPT}]
            ) as stream,
        ):
            message = await stream.get_final_message()
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                proxy.url + "/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            ) as response,
        ):
            metrics = await response.text()
    record = proxy.records()[-1]
    assert record.takeovers == 1 and str(record.served) == "zai-mirror,glm-5"
    assert record.fallbacks == 0  # the cut try answered first: it was taken over, not skipped
    assert [(str(a.target), a.outcome) for a in record.attempts] == [
        ("zai,glm-5", "stream_cut"),
        ("zai-mirror,glm-5", "ok"),
    ]  # one entry per try
    # the cut attempt's output is part of the answer's usage, so part of its cost
    assert record.usage.output_tokens == message.usage.output_tokens
    assert record.usage.output_tokens > 0 and record.cost is not None
    # the client sees the prompt once; the record bills it for each try that was sent it
    assert record.usage.input_tokens > message.usage.input_tokens > 0
    samples = _samples(metrics)
    assert samples[("llmproxy_midstream_takeovers_total", (("route", "default"),))] == 1


async def test_the_journal_has_one_row_per_request_and_per_attempt(
    observed: list[Observed], tmp_path: Path
) -> None:
    plan = FaultPlan([Status(500), Status(500)])  # the same-target retry fails too
    async with run_simulated(sims_for_fallback(plan)) as sims:
        proxy = await start(observed, config_text(sims, FALLBACK), tmp_path)
        async with proxy.openai() as client:
            for _ in range(3):
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": PROMPT}]
                )
        await proxy.flush_journal()
    journal = tmp_path / "requests.db"
    entries = read_requests(journal, Query(limit=10))
    assert len(entries) == 3
    assert [e.path for e in entries] == ["zai 500 -> zai 500 -> cerebras", "zai", "zai"]
    assert [(a["provider"], a["status"], a["error_class"]) for a in entries[0].attempts] == [
        ("zai", 500, "server_error"),
        ("zai", 500, "server_error"),
        ("cerebras", 200, None),
    ]
    assert entries[0].served == "cerebras,llama-3.3-70b" and entries[0].route == "default"
    failed = read_requests(journal, Query(limit=10, failed=True))
    assert [e.id for e in failed] == [entries[0].id]
    by_provider = {row.name: row for row in usage_summary(journal, "provider", None)}
    assert by_provider["zai"].requests == 2 and by_provider["cerebras"].requests == 1
    assert by_provider["zai"].cost_usd == pytest.approx(
        sum(e.cost_usd or 0 for e in entries if e.provider == "zai"), abs=1e-6
    )
    assert by_provider["zai"].cost_usd > 0
    mode = journal.stat().st_mode & 0o777
    assert mode == 0o600
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_metrics_in_prometheus_text_guarded_by_the_client_key(
    observed: list[Observed],
) -> None:
    # 1: zai fails twice, cerebras serves; 2: zai streams; 3: zai rate-limited, cerebras serves
    plan = FaultPlan([Status(500), Status(500), None, openai_rate_limit(retry_after=30)])
    async with run_simulated(sims_for_fallback(plan)) as sims:
        proxy = await start(observed, config_text(sims, FALLBACK), None)
        async with proxy.openai() as client:
            for stream in (False, True, False):
                result = await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": PROMPT}], stream=stream
                )  # type: ignore[call-overload]
                if stream:
                    [chunk async for chunk in result]
        async with aiohttp.ClientSession() as http:
            async with http.get(proxy.url + "/metrics") as refused:
                assert refused.status == 401
            async with http.get(
                proxy.url + "/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            ) as response:
                assert response.headers["content-type"].startswith("text/plain")
                text = await response.text()
    samples = _samples(text)
    served = (
        ("client_api", "openai"),
        ("model", "llama-3.3-70b"),
        ("outcome", "ok"),
        ("provider", "cerebras"),
        ("route", "default"),
        ("status", "200"),
    )
    assert samples[("llmproxy_requests_total", served)] == 2
    assert (
        samples[
            (
                "llmproxy_attempts_total",
                (("model", "glm-5"), ("outcome", "server_error"), ("provider", "zai")),
            )
        ]
        == 2
    )
    assert (
        samples[
            (
                "llmproxy_attempts_total",
                (("model", "glm-5"), ("outcome", "rate_limited"), ("provider", "zai")),
            )
        ]
        == 1
    )
    assert samples[("llmproxy_fallbacks_total", (("route", "default"),))] == 3
    assert samples[("llmproxy_cooldown_seconds", (("model", "glm-5"), ("provider", "zai")))] > 20
    assert samples[("llmproxy_breaker_state", (("model", "glm-5"), ("provider", "zai")))] == 0
    genai = (
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "zai"),
        ("gen_ai_request_model", "auto"),
        ("gen_ai_response_model", "glm-5"),
    )
    assert samples[("gen_ai_server_time_to_first_token_seconds_count", genai)] == 1
    assert (
        samples[("gen_ai_client_token_usage_count", (*genai, ("gen_ai_token_type", "output")))] == 1
    )
    assert (
        samples[
            ("llmproxy_tokens_total", (("model", "glm-5"), ("provider", "zai"), ("type", "output")))
        ]
        > 0
    )
    assert samples[("llmproxy_cost_usd_total", (("model", "glm-5"), ("provider", "zai")))] > 0


async def test_rate_limit_refusals_are_counted(observed: list[Observed]) -> None:
    limits = "[security.rate_limiting]\nrequests_per_minute = 1\nconcurrent_requests = 0"
    async with run_simulated(sims_for_fallback(FaultPlan())) as sims:
        text = config_text(sims, FALLBACK) + limits
        proxy = await start(observed, text, None)
        async with proxy.openai() as client:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": PROMPT}]
            )
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": PROMPT}]
                )
        proxy.app[OBSERVER].flush()  # as a scrape of /metrics does first
        text = proxy.app[OBSERVER].metrics.render().decode()
    assert _samples(text)[("llmproxy_rate_limit_refusals_total", (("client_api", "openai"),))] == 1


async def test_metrics_can_be_switched_off(observed: list[Observed]) -> None:
    async with run_simulated(sims_for_fallback(FaultPlan())) as sims:
        text = config_text(sims, FALLBACK) + "[metrics]\nenabled = false\n"
        proxy = await start(observed, text, None)
        async with proxy.openai() as client:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": PROMPT}]
            )
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                proxy.url + "/metrics", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            ) as response,
        ):
            status, body = response.status, await response.json()
    assert status == 404 and "/metrics" in body["error"]["message"]
    assert proxy.app[OBSERVER].metrics is None
    assert [r.served for r in proxy.records()] == [Target("zai", "glm-5")]  # still recorded


def test_the_requested_model_label_is_bounded() -> None:
    """A client can name any model: past SERIES_LIMIT kinds of request, new names count as
    `other` instead of making new series."""
    metrics = Metrics(list)
    served = Target("zai", "glm-5")
    extra = 25
    for i in range(SERIES_LIMIT + extra):
        metrics.observe(
            RequestRecord(
                id=str(i),
                started=0.0,
                client_api="openai",
                stream=False,
                requested_model=f"model-{i}",
                route="default",
                reason="",
                served=served,
                attempts=(),
                usage=Usage(10, 5),
                cost=None,
                ttft_ms=None,
                total_ms=5.0,
                status=200,
                outcome="ok",
            )
        )
    counts = {
        labels: value
        for (name, labels), value in _samples(metrics.render().decode()).items()
        if name == "gen_ai_client_operation_duration_seconds_count"
    }
    requested = {dict(labels)["gen_ai_request_model"]: value for labels, value in counts.items()}
    assert len(requested) == SERIES_LIMIT + 1
    assert requested["other"] == extra and requested["model-0"] == 1
    assert sum(requested.values()) == SERIES_LIMIT + extra


def test_every_attempt_is_counted_by_target_and_outcome() -> None:
    """A request answered by its one attempt of the served target is counted through its
    series (most requests); every other attempt one by one: `llmproxy_attempts_total` adds
    both up."""
    metrics = Metrics(list)
    zai, cerebras = Target("zai", "glm-5"), Target("cerebras", "llama-3.3-70b")

    def record(served: Target | None, *attempts: Attempt, model: str = "auto") -> RequestRecord:
        return RequestRecord(
            id="r",
            started=0.0,
            client_api="openai",
            stream=False,
            requested_model=model,
            route="default",
            reason="",
            served=served,
            attempts=attempts,
            usage=Usage(10, 5),
            cost=None,
            ttft_ms=None,
            total_ms=5.0,
            status=200 if served else 502,
            outcome="ok" if served else "error",
        )

    failed = Attempt(zai, 500, ErrorClass.SERVER_ERROR, 1.0)
    metrics.observe_all(
        [
            record(zai, Attempt(zai, 200, None, 1.0)),
            record(zai, Attempt(zai, 200, None, 1.0), model="other"),
            record(cerebras, failed, Attempt(cerebras, 200, None, 1.0)),
            record(None, failed),
            record(zai, Attempt(zai, 200, None, 1.0, streaming=True)),
            record(zai, Attempt(cerebras, 200, None, 1.0)),  # not the served target
        ]
    )
    counts = {
        labels: value
        for (name, labels), value in _samples(metrics.render().decode()).items()
        if name == "llmproxy_attempts_total"
    }
    assert counts == {
        (("model", "glm-5"), ("outcome", "ok"), ("provider", "zai")): 3,
        (("model", "glm-5"), ("outcome", "server_error"), ("provider", "zai")): 2,
        (("model", "llama-3.3-70b"), ("outcome", "ok"), ("provider", "cerebras")): 2,
    }


async def test_health_live_and_ready(observed: list[Observed]) -> None:
    plan = FaultPlan.always(openai_insufficient_quota())
    sim = SimulatedProvider("zai", "openai", ["glm-5"], plan=plan)
    async with run_simulated([sim]) as sims:
        proxy = await start(observed, config_text(sims, {"default": "zai,glm-5"}), None)
        async with aiohttp.ClientSession() as http:
            async with http.get(proxy.url + "/health/live") as live:
                assert (live.status, await live.json()) == (200, {"status": "ok"})
            async with http.get(proxy.url + "/health/ready") as ready:
                assert ready.status == 200
                assert (await ready.json())["usable_targets"] == 1
            async with proxy.openai() as client:
                with pytest.raises(openai.APIStatusError):
                    await client.chat.completions.create(
                        model="auto", messages=[{"role": "user", "content": PROMPT}]
                    )
            async with http.get(proxy.url + "/health/ready") as ready:
                body = await ready.json()
    # out of quota: the only target rests, so a load balancer should look elsewhere
    assert ready.status == 503 and body["status"] == "unavailable"
    assert proxy.records()[-1].error == "quota_exhausted"


async def test_a_client_that_goes_away_mid_stream_is_recorded(observed: list[Observed]) -> None:
    slow = SimulatedProvider("zai", "openai", ["glm-5"], chunk_delay=0.2)
    async with run_simulated([slow]) as sims:
        proxy = await start(observed, config_text(sims, {"default": "zai,glm-5"}), None)
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                proxy.url + "/v1/chat/completions",
                json={
                    "model": "auto",
                    "stream": True,
                    "messages": [{"role": "user", "content": PROMPT}],
                },
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            )
            await response.content.readline()
            response.close()
        for _ in range(100):
            if proxy.records():
                break
            await asyncio.sleep(0.05)
    record = proxy.records()[-1]
    assert record.outcome == "client_disconnected" and record.status == 499
    assert str(record.served) == "zai,glm-5" and record.stream


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_cache_reads_and_writes_are_priced_at_their_own_rates() -> None:
    from proxy.capabilities import builtin_capabilities
    from proxy.observe.cost import usage_cost
    from proxy.types import Usage

    sonnet = builtin_capabilities("claude-sonnet-4-5")  # $3 in, $15 out per million
    usage = Usage(
        input_tokens=1000,
        output_tokens=100,
        cache_read_input_tokens=10_000,
        cache_creation_input_tokens=2000,
    )
    expected = (1000 * 3 + 100 * 15 + 10_000 * 0.3 + 2000 * 3.75) / 1e6
    assert usage_cost(usage, sonnet) == pytest.approx(expected)
    # a model whose cache rates nobody knows: cached input is charged as input, never less
    llama = builtin_capabilities("llama-3.3-70b")
    assert usage_cost(usage, llama) == pytest.approx(
        (13_000 * LLAMA_PRICE[0] + 100 * LLAMA_PRICE[1]) / 1e6
    )
    assert usage_cost(usage, builtin_capabilities("some-unknown-model")) is None


def test_a_request_is_priced_once_unless_its_usage_or_target_changes() -> None:
    from proxy.capabilities import ModelCapabilities, builtin_capabilities
    from proxy.observe.record import Trace
    from proxy.types import Decision, Scenario

    asked: list[Target] = []

    def capabilities(target: Target) -> ModelCapabilities:
        asked.append(target)
        return builtin_capabilities("claude-sonnet-4-5")  # $3 in, $15 out per million

    served = Target("anthropic", "claude-sonnet-4-5")
    trace = Trace("req_1", "anthropic")
    decision = Decision(Scenario.DEFAULT, "default chain", (served,))
    trace.routed("claude-sonnet-4-5", False, decision, capabilities)
    trace.ended(served, [], Usage(input_tokens=1000, output_tokens=100))
    header = trace.cost()
    assert header == pytest.approx((1000 * 3 + 100 * 15) / 1e6)
    assert trace.record(200, "ok").cost == header  # the record's cost is the header's
    assert asked == [served]
    trace.ended(served, [], Usage(input_tokens=2000, output_tokens=100))  # a longer answer
    assert trace.cost() == pytest.approx((2000 * 3 + 100 * 15) / 1e6)
    other = Target("other", "claude-sonnet-4-5")
    trace.ended(other, [], trace.usage)
    trace.cost()
    assert asked == [served, served, other]


def test_the_config_overrides_prices_including_cache_rates() -> None:
    text = (
        '[router]\ndefault = "local,m"\n[[providers]]\nname = "local"\n'
        'api_base_url = "https://example.invalid/v1"\nmodels = ["m"]\n'
        "[providers.capabilities.m]\nprice_in = 2.0\nprice_out = 4.0\n"
        "price_cache_read = 0.5\nprice_cache_write = 2.5\n"
    )
    from proxy.observe.cost import usage_cost
    from proxy.types import Target, Usage

    caps = parse_config(text, env={}).capabilities(Target("local", "m"))
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
    )
    assert usage_cost(usage, caps) == pytest.approx(2.0 + 4.0 + 0.5 + 2.5)


async def test_the_status_data_says_target_health_in_plain_words(observed: list[Observed]) -> None:
    import re

    sims = [
        SimulatedProvider("zai", "openai", ["glm-5"], plan=FaultPlan.always(Status(500))),
        SimulatedProvider(
            "kimi", "openai", ["kimi-k2"], plan=FaultPlan.always(openai_rate_limit(retry_after=600))
        ),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]
    routes = {"default": "zai,glm-5|kimi,kimi-k2|cerebras,llama-3.3-70b"}
    async with run_simulated(sims) as running:
        proxy = await start(observed, config_text(running, routes), None)
        async with proxy.openai() as client:
            for _ in range(2):  # 2 x (500, retried 500): the breaker opens at the third
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": PROMPT}]
                )
        async with aiohttp.ClientSession() as http:
            async with http.get(proxy.url + "/ui/api/status") as refused:
                assert refused.status == 401
            async with http.get(
                proxy.url + "/ui/api/status", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            ) as response:
                data = await response.json()
    words = {t["target"]: t["health"] for t in data["targets"]}
    clock = r"\d\d:\d\d:\d\d"
    assert re.fullmatch(
        rf"failing since {clock}, retry at {clock} \(server_error.*\)", words["zai,glm-5"]
    ), words
    assert re.fullmatch(rf"resting until {clock} \(rate_limited.*\)", words["kimi,kimi-k2"])
    assert words["cerebras,llama-3.3-70b"] == "healthy"
    assert [r["path"] for r in data["requests"]] == [
        "zai 500 -> kimi skipped -> cerebras",  # newest first; no retry into an open breaker
        "zai 500 -> zai 500 -> kimi 429 -> cerebras",
    ]
