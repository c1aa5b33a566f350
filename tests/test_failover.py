"""Failover through the real daemon: what the client received, and what every upstream saw
(attempt counts and their timing), for each failure class and time limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import anthropic
import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.simulate import (
    CutAfter,
    FaultPlan,
    Hang,
    MalformedChunk,
    MidStreamError,
    NoDone,
    SimulatedProvider,
    SlowFirstToken,
    StallAfter,
    Status,
    codex_usage_limit,
    openai_content_filter,
    openai_context_length,
    openai_insufficient_quota,
    openai_rate_limit,
    reply_text,
    run_simulated,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]
HELLO = [{"role": "user", "content": "Please tell me a long story about failover"}]
DEFAULT = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}
# zai fails mid-stream; zai-mirror serves the same model under the same persona and accepts an
# assistant prefill, so its continuation must join the partial answer seamlessly.
MIRRORED = {"default": "zai,glm-5|zai-mirror,glm-5|cerebras,llama-3.3-70b"}


def zai(plan: FaultPlan, **kwargs: object) -> SimulatedProvider:
    return SimulatedProvider("zai", "openai", ["glm-5"], plan=plan, persona="glm", **kwargs)  # type: ignore[arg-type]


def mirror(fmt: str = "openai") -> SimulatedProvider:
    return SimulatedProvider("zai-mirror", fmt, ["glm-5"], persona="glm", accepts_prefill=True)


def cerebras(plan: FaultPlan | None = None) -> SimulatedProvider:
    return SimulatedProvider(
        "cerebras", "openai", ["llama-3.3-70b"], plan=plan or FaultPlan(), accepts_prefill=False
    )


FULL_GLM_TEXT = reply_text("glm", "glm-5", "Please tell me a long story about failover")
CEREBRAS_TEXT = reply_text(
    "cerebras", "llama-3.3-70b", "Please tell me a long story about failover"
)
MIRROR_PREFILL = 'provider_extra = {"zai-mirror": "prefill = true"}'


async def ask(client: openai.AsyncOpenAI) -> tuple[str, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HELLO,  # type: ignore[arg-type]
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-llmproxy-attempts"]


async def ask_stream(client: openai.AsyncOpenAI) -> tuple[str, str, list[object]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, raw.headers["x-llmproxy-attempts"], chunks


# --- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [openai_rate_limit(retry_after=0.6), openai_rate_limit(retry_after=None, retry_after_ms=600)],
    ids=["retry-after", "retry-after-ms"],
)
async def test_short_retry_after_is_waited_then_the_same_target_retried(
    clients: Clients, daemon: StartDaemon, fault: Status
) -> None:
    async with run_simulated([zai(FaultPlan([fault])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts = await ask(clients.openai(proxy))
        first, second = sims["zai"].requests
    assert text == FULL_GLM_TEXT
    assert attempts == "zai,glm-5=429;zai,glm-5=ok"
    assert second.started - first.ended >= 0.6  # never sooner than the header says
    assert second.started - first.ended < 1.5


async def test_long_retry_after_falls_back_at_once_and_cools_the_target_down(
    clients: Clients, daemon: StartDaemon
) -> None:
    plan = FaultPlan.always(openai_rate_limit(retry_after=30))
    async with run_simulated([zai(plan), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        client = clients.openai(proxy)
        started = time.monotonic()
        text, attempts = await ask(client)
        assert time.monotonic() - started < 1.0
        assert text == CEREBRAS_TEXT
        assert attempts == "zai,glm-5=429;cerebras,llama-3.3-70b=ok"
        _, attempts = await ask(client)
        assert attempts == "zai,glm-5=unavailable;cerebras,llama-3.3-70b=ok"
        assert len(sims["zai"].requests) == 1


async def test_persistent_429_without_retry_after_is_not_retried(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(Status(429))), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts = await ask(clients.openai(proxy))
        assert len(sims["zai"].requests) == 1
    assert text == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=429;cerebras,llama-3.3-70b=ok"


# --- transient failures --------------------------------------------------------------------------


async def test_500_then_200_is_retried_once_on_the_same_target_after_a_short_jitter(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([Status(500)])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts = await ask(clients.openai(proxy))
        first, second = sims["zai"].requests
    assert text == FULL_GLM_TEXT
    assert attempts == "zai,glm-5=500;zai,glm-5=ok"
    assert 0.04 <= second.started - first.ended < 0.5


async def test_persistent_503_gets_two_attempts_then_falls_back(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(Status(503))), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts = await ask(clients.openai(proxy))
        assert len(sims["zai"].requests) == 2
    assert text == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=503;zai,glm-5=503;cerebras,llama-3.3-70b=ok"


async def test_silent_provider_gets_one_attempt_and_the_answer_comes_well_inside_the_deadline(
    clients: Clients, daemon: StartDaemon
) -> None:
    timeouts = "response_headers_ms = 500\nfirst_token_ms = 500\nfirst_token_ms_per_1k_input = 0"
    async with run_simulated([zai(FaultPlan.always(Hang())), cerebras()]) as sims:
        proxy = await daemon(
            config_text(sims, DEFAULT, proxy="timeout_ms = 5000", timeouts=timeouts)
        )
        started = time.monotonic()
        text, attempts = await ask(clients.openai(proxy))
        elapsed = time.monotonic() - started
        assert len(sims["zai"].requests) == 1
    assert text == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=timeout;cerebras,llama-3.3-70b=ok"
    assert 0.45 < elapsed < 2.0


async def test_whole_chain_deadline_bounds_retries(clients: Clients, daemon: StartDaemon) -> None:
    timeouts = "response_headers_ms = 5000\nfirst_token_ms = 5000"
    async with run_simulated(
        [zai(FaultPlan.always(Hang())), cerebras(FaultPlan.always(Hang()))]
    ) as sims:
        proxy = await daemon(
            config_text(sims, DEFAULT, proxy="timeout_ms = 800", timeouts=timeouts)
        )
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            await ask(clients.openai(proxy))
        assert time.monotonic() - started < 2.0
        assert sims["cerebras"].requests == ()
    assert caught.value.status_code == 504


async def test_first_token_too_slow_falls_back(clients: Clients, daemon: StartDaemon) -> None:
    timeouts = "first_token_ms = 400\nfirst_token_ms_per_1k_input = 0"
    async with run_simulated([zai(FaultPlan.always(SlowFirstToken(3.0))), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT, timeouts=timeouts))
        started = time.monotonic()
        text, attempts, _ = await ask_stream(clients.openai(proxy))
        assert time.monotonic() - started < 2.0
        assert len(sims["zai"].requests) == 1
    assert text == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=timeout;cerebras,llama-3.3-70b=streaming"


# --- mid-stream failover -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [CutAfter(3), StallAfter(3, 5.0), MidStreamError(3, status=500)],
    ids=["cut", "stalled", "in-stream-500"],
)
@pytest.mark.parametrize("mirror_format", ["openai", "anthropic"])
async def test_stream_failing_after_text_is_completed_by_prefill_on_a_capable_fallback(
    clients: Clients, daemon: StartDaemon, fault: object, mirror_format: str
) -> None:
    async with run_simulated(
        [zai(FaultPlan([fault])), mirror(mirror_format), cerebras()]  # type: ignore[list-item]
    ) as sims:
        text_config = config_text(
            sims,
            MIRRORED,
            timeouts="stream_idle_ms = 400",
            provider_extra={"zai-mirror": "prefill = true"},
        )
        proxy = await daemon(text_config)
        text, attempts, chunks = await ask_stream(clients.openai(proxy))
        continuation = sims["zai-mirror"].requests[0].body
    assert text == FULL_GLM_TEXT  # the whole answer, and no part of it twice
    assert attempts == "zai,glm-5=streaming"  # the header was sent at the commit point
    assert len({c.id for c in chunks}) == 1  # type: ignore[attr-defined]
    assert chunks[-1].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
    assert sims["cerebras"].requests == ()
    prefill = continuation["messages"][-1]
    assert prefill["role"] == "assistant"
    sent = (
        prefill["content"] if isinstance(prefill["content"], str) else prefill["content"][0]["text"]
    )
    assert FULL_GLM_TEXT.startswith(sent) and 0 < len(sent) < len(FULL_GLM_TEXT)


async def test_anthropic_client_gets_one_well_formed_stream_across_the_failover(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([CutAfter(4)])), mirror("anthropic")]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5"}))
        async with clients.anthropic(proxy).messages.stream(
            model="auto",
            max_tokens=512,
            messages=HELLO,  # type: ignore[arg-type]
        ) as stream:
            message = await stream.get_final_message()
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == FULL_GLM_TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


async def test_cut_stream_with_no_prefill_capable_fallback_ends_with_an_honest_error(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([CutAfter(3)])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        received: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in raw.parse():
                received.extend(c.delta.content or "" for c in chunk.choices)
        assert sims["cerebras"].requests == ()  # never sent a prefill it cannot take
    partial = "".join(received)
    assert partial and FULL_GLM_TEXT.startswith(partial) and partial != FULL_GLM_TEXT
    assert "no remaining target could continue the answer" in caught.value.message


async def test_cut_stream_without_prefill_is_completed_in_buffer_mode(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([CutAfter(3)])), cerebras()]) as sims:
        buffered = config_text(sims, DEFAULT) + "[router.options.default]\nbuffer = true\n"
        proxy = await daemon(buffered)
        text, attempts, chunks = await ask_stream(clients.openai(proxy))
    assert text == CEREBRAS_TEXT  # a clean, invisible restart
    assert attempts == "zai,glm-5=stream_cut;cerebras,llama-3.3-70b=ok"
    assert chunks[-1].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]


async def test_tool_call_cut_inside_its_arguments_is_invisible(
    clients: Clients, daemon: StartDaemon
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {"query": {"type": "string"}},
                },
            },
        }
    ]
    async with run_simulated([zai(FaultPlan([CutAfter(2)]), chunk_chars=4), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        stream = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,
            tools=tools,
            stream=True,  # type: ignore[arg-type]
        )
        chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls if tc.function and tc.function.name] == ["lookup"]
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert arguments == '{"query":"example query"}'
    assert {tc.index for tc in calls} == {0}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --- honest endings ----------------------------------------------------------------------------


async def test_malformed_chunk_is_skipped_and_logged(
    clients: Clients, daemon: StartDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_simulated([zai(FaultPlan([MalformedChunk(after=2)])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        with caplog.at_level(logging.WARNING, logger="llmproxy.upstream"):
            text, attempts, _ = await ask_stream(clients.openai(proxy))
    assert text == FULL_GLM_TEXT
    assert attempts == "zai,glm-5=streaming"
    assert "unparseable stream chunk" in caplog.text


async def test_finish_reason_without_done_is_a_complete_answer(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([NoDone()])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts, chunks = await ask_stream(clients.openai(proxy))
        assert sims["cerebras"].requests == ()
    assert text == FULL_GLM_TEXT
    assert attempts == "zai,glm-5=streaming"
    assert chunks[-1].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]


async def test_response_model_names_the_model_that_served(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(Status(500))), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        completion = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,  # type: ignore[arg-type]
        )
        stream = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        models = {chunk.model async for chunk in stream}
    assert completion.model == "llama-3.3-70b"
    assert models == {"llama-3.3-70b"}


# --- classes that do not (or only sometimes) fall back ----------------------------------------


async def test_context_length_400_is_not_retried_and_moves_on(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(openai_context_length())), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, attempts = await ask(clients.openai(proxy))
        assert len(sims["zai"].requests) == 1
    assert text == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=400;cerebras,llama-3.3-70b=ok"


async def test_content_filter_refusal_is_returned_after_one_attempt(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(openai_content_filter())), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(clients.openai(proxy))
        assert len(sims["zai"].requests) == 1
        assert sims["cerebras"].requests == ()
    assert caught.value.response.headers["x-llmproxy-attempts"] == "zai,glm-5=400"


async def test_content_filter_falls_back_when_the_route_opts_in(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan.always(openai_content_filter())), cerebras()]) as sims:
        text = config_text(sims, DEFAULT) + (
            "[router.options.default]\ncontent_filter_fallback = true\n"
        )
        proxy = await daemon(text)
        answer, attempts = await ask(clients.openai(proxy))
    assert answer == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=400;cerebras,llama-3.3-70b=ok"


# --- health ------------------------------------------------------------------------------------


async def test_flapping_primary_is_cut_off_by_its_breaker_and_gets_traffic_back_after_recovery(
    clients: Clients, daemon: StartDaemon
) -> None:
    health = "[proxy.health]\nfailure_threshold = 3\nopen_ms = 600"
    async with run_simulated([zai(FaultPlan.always(Status(500))), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT, timeouts=health))
        client = clients.openai(proxy)
        for _ in range(2):  # 500, retry 500; then the 500 that opens the breaker, no retry
            await ask(client)
        assert len(sims["zai"].requests) == 3
        for _ in range(3):
            _, attempts = await ask(client)
            assert attempts.startswith("zai,glm-5=unavailable;")
        assert len(sims["zai"].requests) == 3  # no traffic while open
        sims["zai"].plan.heal()
        await asyncio.sleep(0.7)
        text, attempts = await ask(client)  # the single half-open probe
        assert text == FULL_GLM_TEXT
        assert attempts == "zai,glm-5=ok"
        text, _ = await ask(client)
        assert text == FULL_GLM_TEXT
        status = await _health(client)
    assert status["zai,glm-5"]["state"] == "closed"


async def _health(client: openai.AsyncOpenAI) -> dict[str, dict[str, object]]:
    response = await client.get("/../health", cast_to=object)  # type: ignore[arg-type]
    assert isinstance(response, dict)
    return {t["target"]: t for t in response["targets"]}


@pytest.mark.parametrize(
    "fault",
    [openai_insufficient_quota(), codex_usage_limit(resets_in_seconds=3600)],
    ids=["insufficient_quota", "usage_limit_reached"],
)
async def test_quota_exhausted_primary_is_not_hit_on_every_request(
    clients: Clients, daemon: StartDaemon, fault: Status
) -> None:
    async with run_simulated([zai(FaultPlan.always(fault)), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        client = clients.openai(proxy)
        for _ in range(4):
            text, _ = await ask(client)
            assert text == CEREBRAS_TEXT
        assert len(sims["zai"].requests) == 1
        status = await _health(client)
    assert status["zai,glm-5"]["cooldown_left"] > 3000  # type: ignore[operator]


# --- cancellation ------------------------------------------------------------------------------


async def test_client_disconnect_cancels_the_upstream_stream(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(
        [zai(FaultPlan(), chunk_delay=0.1, chunk_chars=2), cerebras()]
    ) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        stream = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.close()
        (record,) = await sims["zai"].wait_for_requests(1, within=3.0)
    assert record.outcome == "client_disconnected"
    assert record.chunks_sent < len(FULL_GLM_TEXT) // 2


async def test_anthropic_error_event_ends_a_stream_that_cannot_be_completed(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([CutAfter(3)])), cerebras()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        with pytest.raises(anthropic.APIStatusError):
            async with clients.anthropic(proxy).messages.stream(
                model="auto",
                max_tokens=512,
                messages=HELLO,  # type: ignore[arg-type]
            ) as stream:
                await stream.get_final_message()


async def test_route_timeouts_override_the_providers(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated([zai(FaultPlan.always(SlowFirstToken(3.0))), cerebras()]) as sims:
        text = config_text(sims, DEFAULT, timeouts="first_token_ms = 30000") + (
            "[router.options.default.timeouts]\nfirst_token_ms = 300\n"
            "first_token_ms_per_1k_input = 0\n"
        )
        proxy = await daemon(text)
        started = time.monotonic()
        answer, attempts, _ = await ask_stream(clients.openai(proxy))
        assert time.monotonic() - started < 2.0
    assert answer == CEREBRAS_TEXT
    assert attempts == "zai,glm-5=timeout;cerebras,llama-3.3-70b=streaming"


def test_time_to_first_token_allowance_grows_with_the_prompt() -> None:
    from proxy.config import Timeouts

    limits = Timeouts(first_token=10.0, first_token_per_1k_input=0.5)
    assert limits.first_token_for(0) == 10.0
    assert limits.first_token_for(40_000) == 30.0


async def test_usage_adds_up_over_the_attempts_that_produced_the_answer(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([zai(FaultPlan([CutAfter(3)])), mirror(), cerebras()]) as sims:
        proxy = await daemon(
            config_text(sims, MIRRORED, provider_extra={"zai-mirror": "prefill = true"})
        )
        stream = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        (continuation,) = sims["zai-mirror"].requests
    usage = chunks[-1].usage
    assert usage is not None
    # the cut attempt never reported usage: its 3 chunks of 8 characters count as ~6 tokens
    assert usage.completion_tokens == 6 + continuation.chunks_sent
