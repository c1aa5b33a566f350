"""The simulated providers, driven by the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from proxy.simulate import (
    CutAfter,
    FaultPlan,
    Hang,
    MalformedChunk,
    MidStreamError,
    NoDone,
    Reset,
    SimulatedProvider,
    SimulatorThread,
    SlowFirstByte,
    SlowFirstToken,
    StallAfter,
    Status,
    anthropic_overloaded,
    anthropic_prompt_too_long,
    codex_usage_limit,
    example_arguments,
    minimax_usage_limit,
    openai_content_filter,
    openai_context_length,
    openai_insufficient_quota,
    openai_rate_limit,
    reasoning_text,
    reply_text,
    run_simulated,
    thinking_signature,
    tool_result_text,
    zai_http_500,
)
from proxy.types import ProviderFormat, StopReason

ZAI_KEY = "zai-test-key"
MM_KEY = "minimax-test-key"

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "verbose": {"type": "boolean"},
    },
    "required": ["location", "unit", "days"],
}
WEATHER_ARGS = {"location": "example location", "unit": "celsius", "days": 1}
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
]
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, SimulatedProvider]]:
    providers = [
        SimulatedProvider("zai", "openai", ["glm-5"], api_key=ZAI_KEY, reasoning=True),
        SimulatedProvider("oai", "openai", ["gpt-4o"], accepts_prefill=True),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2.5"], api_key=MM_KEY),
        SimulatedProvider("thinker", "anthropic", ["claude-x"], reasoning=True),
    ]
    async with run_simulated(providers) as running:
        yield running


def oai_client(sim: SimulatedProvider, key: str = ZAI_KEY, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.base_url, api_key=key, max_retries=0, **kw)


def ant_client(sim: SimulatedProvider, key: str = MM_KEY, **kw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key=key, max_retries=0, **kw)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def raw_post(
    sim: SimulatedProvider, path: str, body: Any, **headers: str
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


# --- OpenAI format ------------------------------------------------------------------------------


async def test_openai_plain_reply_names_provider_model_and_echoes(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    async with oai_client(zai) as client:
        resp = await client.chat.completions.create(
            model="glm-5", messages=[user("Hello   there,\n friend")]
        )
    choice = resp.choices[0]
    assert choice.message.content == "[zai/glm-5] You said: Hello there, friend"
    assert choice.message.content == reply_text("zai", "glm-5", "Hello there, friend")
    assert choice.finish_reason == "stop"
    extra = choice.message.model_extra or {}
    assert extra["reasoning_content"] == reasoning_text("zai", "glm-5", "Hello there, friend")
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.object == "chat.completion"


async def test_openai_stream_shape(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    body = {"model": "glm-5", "messages": [user("Tell me a story")]}
    async with oai_client(zai) as client:
        stream = await client.chat.completions.create(
            **body, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    kinds = [
        "reasoning" if (d.model_extra or {}).get("reasoning_content") else "text"
        for d in deltas
        if d.content or (d.model_extra or {}).get("reasoning_content")
    ]
    assert kinds == sorted(kinds)  # all reasoning first, then text
    text = "".join(d.content or "" for d in deltas)
    assert text == zai.expected_text(body) == reply_text("zai", "glm-5", "Tell me a story")
    assert kinds.count("text") >= 4
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == zai.reply_for(body).output_tokens


async def test_openai_raw_stream_ends_with_done_and_thinking_can_be_disabled(
    sims: dict[str, Any],
) -> None:
    zai = sims["zai"]
    body = {
        "model": "glm-5",
        "messages": [user("hi")],
        "stream": True,
        "thinking": {"type": "disabled"},
    }
    status, raw = await raw_post(zai, "/chat/completions", body, Authorization=f"Bearer {ZAI_KEY}")
    assert status == 200
    lines = [line for line in raw.decode().split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    assert "reasoning_content" not in raw.decode()


async def test_openai_tool_call_then_tool_result(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    messages: list[Any] = [user("Weather in Paris?")]
    async with oai_client(zai) as client:
        stream = await client.chat.completions.create(
            model="glm-5", messages=messages, tools=OPENAI_TOOLS, stream=True
        )
        chunks = [c async for c in stream]
        calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        assert calls[0].id and calls[0].function and calls[0].function.name == "get_weather"
        fragments = [tc.function.arguments for tc in calls[1:] if tc.function]
        assert len(fragments) >= 3 and all(tc.index == 0 for tc in calls)
        assert json.loads("".join(f or "" for f in fragments)) == WEATHER_ARGS
        assert chunks[-1].choices[0].finish_reason == "tool_calls"

        plain = await client.chat.completions.create(
            model="glm-5", messages=messages, tools=OPENAI_TOOLS
        )
        call = plain.choices[0].message.tool_calls
        assert call is not None and call[0].id == calls[0].id  # ids are stable per request
        assert plain.choices[0].message.content is None
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call[0].model_dump()]},
            {"role": "tool", "tool_call_id": call[0].id, "content": "sunny, 21C"},
        ]
        final = await client.chat.completions.create(
            model="glm-5", messages=messages, tools=OPENAI_TOOLS
        )
    assert final.choices[0].message.content == tool_result_text(
        "zai", "glm-5", "get_weather", "sunny, 21C"
    )
    assert final.choices[0].finish_reason == "stop"


async def test_openai_tool_choice_none_and_max_tokens(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    async with oai_client(oai) as client:
        none = await client.chat.completions.create(
            model="gpt-4o", messages=[user("Hi")], tools=OPENAI_TOOLS, tool_choice="none"
        )
        short = await client.chat.completions.create(
            model="gpt-4o", messages=[user("Hi")], max_completion_tokens=2
        )
    assert none.choices[0].message.content == reply_text("oai", "gpt-4o", "Hi")
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == reply_text("oai", "gpt-4o", "Hi")[:16]


async def test_openai_prefill_continues_or_is_refused(sims: dict[str, Any]) -> None:
    full = reply_text("oai", "gpt-4o", "Hi")
    prefill = full[:12]
    async with oai_client(sims["oai"]) as client:
        resp = await client.chat.completions.create(
            model="gpt-4o", messages=[user("Hi"), {"role": "assistant", "content": prefill}]
        )
    assert resp.choices[0].message.content == full[12:]
    async with oai_client(sims["zai"]) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(
                model="glm-5", messages=[user("Hi"), {"role": "assistant", "content": "x"}]
            )
    assert "prefill" in err.value.message
    assert sims["zai"].requests[-1].outcome == "rejected"


async def test_openai_auth_unknown_model_and_models_list(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    async with oai_client(zai, key="wrong") as client:
        with pytest.raises(openai.AuthenticationError) as auth:
            await client.chat.completions.create(model="glm-5", messages=[user("Hi")])
    assert auth.value.code == "invalid_api_key"
    async with oai_client(zai) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="glm-9", messages=[user("Hi")])
        models = await client.models.list()
    assert missing.value.code == "model_not_found"
    assert [m.id for m in models.data] == ["glm-5"]


# --- Anthropic format ---------------------------------------------------------------------------


async def test_anthropic_plain_and_count_tokens(sims: dict[str, Any]) -> None:
    mm = sims["minimax"]
    messages: list[Any] = [user("Bonjour")]
    async with ant_client(mm) as client:
        msg = await client.messages.create(model="MiniMax-M2.5", max_tokens=100, messages=messages)
        count = await client.messages.count_tokens(model="MiniMax-M2.5", messages=messages)
    assert msg.content[0].type == "text"
    assert msg.content[0].text == reply_text("minimax", "MiniMax-M2.5", "Bonjour")
    assert msg.stop_reason == "end_turn" and msg.id.startswith("msg_")
    assert msg.usage.input_tokens == count.input_tokens > 0
    record = mm.requests[0]
    assert record.headers["authorization"] == f"Bearer {MM_KEY}"
    assert record.headers["anthropic-version"]


async def test_anthropic_stream_with_thinking_event_order(sims: dict[str, Any]) -> None:
    thinker = sims["thinker"]
    async with ant_client(thinker) as client:
        stream = await client.messages.create(
            model="claude-x", max_tokens=1000, messages=[user("Why?")], stream=True
        )
        events = [e async for e in stream]
        async with client.messages.stream(
            model="claude-x", max_tokens=1000, messages=[user("Why?")]
        ) as helper:
            final = await helper.get_final_message()
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert deltas.index("signature_delta") == deltas.count("thinking_delta")
    assert deltas[-1] == "text_delta"
    thinking, text = final.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == reasoning_text("thinker", "claude-x", "Why?")
    assert thinking.signature == thinking_signature("thinker", thinking.thinking)
    assert text.text == reply_text("thinker", "claude-x", "Why?")


async def test_anthropic_tool_round_trip_and_signature_check(sims: dict[str, Any]) -> None:
    thinker = sims["thinker"]
    messages: list[Any] = [user("Weather?")]
    async with ant_client(thinker) as client:
        stream = await client.messages.create(
            model="claude-x",
            max_tokens=1000,
            messages=messages,
            tools=ANTHROPIC_TOOLS,
            stream=True,
        )
        events = [e async for e in stream]
        partials = [
            e.delta.partial_json
            for e in events
            if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        ]
        assert len(partials) >= 4 and partials[0] == ""
        assert json.loads("".join(partials)) == WEATHER_ARGS
        msg = await client.messages.create(
            model="claude-x", max_tokens=1000, messages=messages, tools=ANTHROPIC_TOOLS
        )
        assert msg.stop_reason == "tool_use"
        tool_use = msg.content[-1]
        assert tool_use.type == "tool_use" and tool_use.input == WEATHER_ARGS
        history = [c.model_dump(exclude_none=True) for c in msg.content]
        messages += [
            {"role": "assistant", "content": history},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "rain"}],
            },
        ]
        final = await client.messages.create(
            model="claude-x", max_tokens=1000, messages=messages, tools=ANTHROPIC_TOOLS
        )
        assert final.content[-1].type == "text"
        assert final.content[-1].text == tool_result_text(
            "thinker", "claude-x", "get_weather", "rain"
        )
        history[0]["signature"] = thinking_signature("minimax", history[0]["thinking"])
        with pytest.raises(anthropic.BadRequestError) as err:
            await client.messages.create(model="claude-x", max_tokens=1000, messages=messages)
    assert "Invalid `signature`" in err.value.message


async def test_anthropic_prefill(sims: dict[str, Any]) -> None:
    mm = sims["minimax"]
    full = reply_text("minimax", "MiniMax-M2.5", "Hi")
    async with ant_client(mm) as client:
        msg = await client.messages.create(
            model="MiniMax-M2.5",
            max_tokens=100,
            messages=[user("Hi"), {"role": "assistant", "content": full[:20]}],
        )
        assert msg.content[0].type == "text" and msg.content[0].text == full[20:]
        with pytest.raises(anthropic.BadRequestError) as err:
            await client.messages.create(
                model="MiniMax-M2.5",
                max_tokens=100,
                messages=[user("Hi"), {"role": "assistant", "content": "Sure "}],
            )
    assert "trailing whitespace" in err.value.message


async def test_anthropic_requires_version_and_key(sims: dict[str, Any]) -> None:
    mm = sims["minimax"]
    body = {"model": "MiniMax-M2.5", "max_tokens": 10, "messages": [user("x")]}
    status, raw = await raw_post(mm, "/v1/messages", body, **{"x-api-key": MM_KEY})
    assert status == 400
    assert json.loads(raw)["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    async with ant_client(mm, key="nope") as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(**body)


# --- Faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "check"),
    [
        (
            openai_rate_limit(retry_after=2, retry_after_ms=2000),
            openai.RateLimitError,
            lambda e: (
                e.code == "rate_limit_exceeded"
                and e.response.headers["retry-after"] == "2"
                and e.response.headers["retry-after-ms"] == "2000"
            ),
        ),
        (
            codex_usage_limit(resets_in_seconds=120),
            openai.RateLimitError,
            lambda e: (
                e.body["type"] == "usage_limit_reached" and e.body["resets_in_seconds"] == 120
            ),
        ),
        (
            openai_insufficient_quota(),
            openai.RateLimitError,
            lambda e: e.code == "insufficient_quota",
        ),
        (
            zai_http_500(),
            openai.InternalServerError,
            lambda e: e.response.text.startswith("HTTP 500 - "),
        ),
        (
            zai_http_500(as_json=True),
            openai.InternalServerError,
            lambda e: e.body["message"].startswith("HTTP 500 - "),
        ),
        (
            openai_context_length(),
            openai.BadRequestError,
            lambda e: e.code == "context_length_exceeded",
        ),
        (openai_content_filter(), openai.BadRequestError, lambda e: e.code == "content_filter"),
        (Status(503), openai.InternalServerError, lambda e: e.body["type"] == "server_error"),
    ],
)
async def test_openai_status_faults(
    sims: dict[str, Any], status: Status, error: type[openai.APIStatusError], check: Any
) -> None:
    zai = sims["zai"]
    zai.plan.push(status)
    async with oai_client(zai) as client:
        with pytest.raises(error) as err:
            await client.chat.completions.create(model="glm-5", messages=[user("x")])
    assert err.value.status_code == status.code
    assert check(err.value)
    assert zai.requests[-1].outcome == f"Status({status.code})"


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (anthropic_overloaded(), anthropic.OverloadedError, "Overloaded"),
        (minimax_usage_limit(), anthropic.RateLimitError, "usage limit exceeded (2056)"),
        (
            anthropic_prompt_too_long(tokens=250_000),
            anthropic.BadRequestError,
            "prompt is too long: 250000 tokens > 200000 maximum",
        ),
        (Status(429, retry_after=3), anthropic.RateLimitError, "rate limit"),
    ],
)
async def test_anthropic_status_faults(
    sims: dict[str, Any], status: Status, error: type[anthropic.APIStatusError], message: str
) -> None:
    mm = sims["minimax"]
    mm.plan.push(status)
    async with ant_client(mm) as client:
        with pytest.raises(error) as err:
            await client.messages.create(
                model="MiniMax-M2.5", max_tokens=10, messages=[user("x")], stream=True
            )
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert message in body["error"]["message"]
    if status.retry_after is not None:
        assert err.value.response.headers["retry-after"] == "3"


async def test_reset_is_a_connection_error(sims: dict[str, Any]) -> None:
    zai, mm = sims["zai"], sims["minimax"]
    zai.plan.push(Reset())
    mm.plan.push(Reset())
    async with oai_client(zai) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model="glm-5", messages=[user("x")])
    async with ant_client(mm) as client:
        with pytest.raises(anthropic.APIConnectionError):
            await client.messages.create(model="MiniMax-M2.5", max_tokens=9, messages=[user("x")])
    assert zai.requests[-1].outcome == "Reset" and zai.requests[-1].status is None
    assert mm.requests[-1].outcome == "Reset"


async def test_hang_until_client_timeout_is_recorded_as_disconnect(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    zai.plan.push(Hang())
    async with oai_client(zai, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="glm-5", messages=[user("x")])
    (record,) = await zai.wait_for_requests(1)
    assert record.fault == "Hang" and record.outcome == "client_disconnected"


async def test_hung_handler_does_not_block_shutdown() -> None:
    sim = SimulatedProvider("h", "openai", plan=FaultPlan.always(Hang()))
    async with aiohttp.ClientSession() as session:
        async with run_simulated([sim]):
            request = session.post(sim.base_url + "/chat/completions", json={"messages": []})
            task = asyncio.ensure_future(request)
            await asyncio.sleep(0.05)
            stopping = time.monotonic()
        with pytest.raises(aiohttp.ClientError):
            await task
    assert time.monotonic() - stopping < 0.5
    assert sim.requests[0].outcome == "server_stopped" and sim.requests[0].fault == "Hang"


async def test_slow_first_byte_and_slow_first_token(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    oai.plan.push(SlowFirstByte(0.2), SlowFirstToken(0.2))
    body = {"model": "gpt-4o", "messages": [user("x")], "stream": True}
    async with aiohttp.ClientSession() as session:
        for expect_headers_late in (True, False):
            started = time.monotonic()
            async with session.post(oai.base_url + "/chat/completions", json=body) as resp:
                headers_at = time.monotonic() - started
                await resp.content.readline()
                first_event_at = time.monotonic() - started
            assert first_event_at >= 0.19
            assert (headers_at >= 0.19) is expect_headers_late


async def test_cut_after_leaves_an_incomplete_stream(sims: dict[str, Any]) -> None:
    zai, mm = sims["zai"], sims["minimax"]
    zai.plan.push(CutAfter(3))
    mm.plan.push(CutAfter(2))
    seen: list[Any] = []
    async with oai_client(zai) as client:
        with pytest.raises(openai.APIConnectionError):
            stream = await client.chat.completions.create(
                model="glm-5", messages=[user("A long enough message")], stream=True
            )
            async for chunk in stream:
                seen.append(chunk)
    deltas = [c.choices[0].delta for c in seen]
    content = [d for d in deltas if d.content or (d.model_extra or {}).get("reasoning_content")]
    assert len(content) == 3
    assert all(c.choices[0].finish_reason is None for c in seen)
    record = zai.requests[-1]
    assert record.outcome == "CutAfter" and record.chunks_sent == 3

    events: list[Any] = []
    async with ant_client(mm) as client:
        stream = await client.messages.create(
            model="MiniMax-M2.5", max_tokens=99, messages=[user("Hello")], stream=True
        )
        # The Anthropic SDK lets the transport's error through unwrapped.
        with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
            async for event in stream:
                events.append(event)
    assert [e.type for e in events].count("content_block_delta") == 2
    assert "message_stop" not in [e.type for e in events]


async def test_stall_after_pauses_mid_stream(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    oai.plan.push(StallAfter(2, 0.3))
    stamps: list[float] = []
    async with oai_client(oai) as client:
        asked = time.monotonic()
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[user("hello")], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                stamps.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # The third chunk cannot come before the pause has passed, however late the client read
    # the first two (a gap measured between two reads shrinks when a loaded machine delays
    # the earlier read); the pause is the longest gap, and it follows the second chunk.
    assert stamps[2] - asked >= 0.3
    assert gaps.index(max(gaps)) == 1
    assert oai.requests[-1].outcome == "StallAfter"


async def test_mid_stream_error_in_each_dialect(sims: dict[str, Any]) -> None:
    oai, mm = sims["oai"], sims["minimax"]
    oai.plan.push(MidStreamError(2))
    mm.plan.push(MidStreamError(1, status=529))
    texts: list[str] = []
    async with oai_client(oai) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[user("hello")], stream=True
        )
        with pytest.raises(openai.APIError) as err:
            async for chunk in stream:
                texts.append(chunk.choices[0].delta.content or "")
    assert len([t for t in texts if t]) == 2
    assert "server had an error" in err.value.message
    async with ant_client(mm) as client:
        stream2 = await client.messages.create(
            model="MiniMax-M2.5", max_tokens=99, messages=[user("Hello")], stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as aerr:
            async for _ in stream2:
                pass
    body = aerr.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"


async def test_malformed_chunk_and_no_done_on_the_wire(sims: dict[str, Any]) -> None:
    oai, mm = sims["oai"], sims["minimax"]
    oai.plan.push(MalformedChunk(1), NoDone())
    mm.plan.push(NoDone())
    body = {"model": "gpt-4o", "messages": [user("hello")], "stream": True}
    _, malformed = await raw_post(oai, "/chat/completions", body)
    frames = malformed.decode().split("\n\n")
    assert frames[2].startswith("data: {") and frames[2].endswith('[{"delta": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[2].removeprefix("data: "))
    assert frames[-2] == "data: [DONE]"
    _, no_done = await raw_post(oai, "/chat/completions", body)
    assert b'"finish_reason":"stop"' in no_done and b"[DONE]" not in no_done
    abody = {"model": "MiniMax-M2.5", "max_tokens": 9, "messages": [user("x")], "stream": True}
    _, anthropic_raw = await raw_post(
        mm, "/v1/messages", abody, **{"x-api-key": MM_KEY, "anthropic-version": "2023-06-01"}
    )
    assert b"event: message_delta" in anthropic_raw and b"message_stop" not in anthropic_raw
    assert [r.outcome for r in oai.requests] == ["MalformedChunk", "NoDone"]


async def test_non_streaming_requests_degrade_stream_faults(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    oai.plan.push(MidStreamError(1, status=502), CutAfter(1))
    async with oai_client(oai) as client:
        with pytest.raises(openai.InternalServerError) as err:
            await client.chat.completions.create(model="gpt-4o", messages=[user("x")])
        assert err.value.status_code == 502
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model="gpt-4o", messages=[user("x")])


async def test_latency_settings_delay_first_token_and_chunks() -> None:
    sim = SimulatedProvider("slow", "openai", first_token_delay=0.15, chunk_delay=0.01)
    body = {"model": "m", "messages": [user("latency")]}
    chunks = sim.reply_for(body).output_tokens
    async with run_simulated([sim]), oai_client(sim) as client:
        started = time.monotonic()
        await client.chat.completions.create(**body)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.14 + 0.01 * (chunks - 1)
        sim.first_token_delay = 0.0
        started = time.monotonic()
        stream = await client.chat.completions.create(**body, stream=True)
        async for _ in stream:
            pass
        assert time.monotonic() - started < elapsed


async def test_text_before_parallel_tool_calls() -> None:
    tools = [*ANTHROPIC_TOOLS, {"name": "get_time", "input_schema": {"type": "object"}}]
    sim = SimulatedProvider("mm", "anthropic", text_before_tool=True, parallel_tool_calls=2)
    async with run_simulated([sim]), ant_client(sim) as client:
        msg = await client.messages.create(
            model="m", max_tokens=500, messages=[user("go")], tools=tools
        )
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    text, weather, clock = msg.content
    assert text.type == "text" and text.text == "[mm/m] Calling get_weather."
    assert weather.type == "tool_use" and weather.input == WEATHER_ARGS
    assert clock.type == "tool_use" and clock.name == "get_time" and clock.input == {}
    assert weather.id != clock.id and msg.stop_reason == "tool_use"


# --- Recording, disconnects, plans --------------------------------------------------------------


async def test_requests_are_recorded(sims: dict[str, Any]) -> None:
    zai = sims["zai"]
    before = time.monotonic()
    async with oai_client(zai) as client:
        await client.chat.completions.create(model="glm-5", messages=[user("rec")])
        stream = await client.chat.completions.create(
            model="glm-5", messages=[user("rec")], stream=True
        )
        async for _ in stream:
            pass
    first, second = zai.requests
    assert before <= first.started <= first.ended <= second.started
    assert first.path == "/v1/chat/completions" and first.method == "POST"
    assert first.headers["authorization"] == f"Bearer {ZAI_KEY}"
    assert first.body == {"model": "glm-5", "messages": [user("rec")]} and first.model == "glm-5"
    assert (first.stream, second.stream) == (False, True)
    assert first.outcome == second.outcome == "ok" and first.status == 200
    assert second.chunks_sent == zai.reply_for(second.body).output_tokens
    assert zai.counts() == {"ok": 2}


async def test_client_disconnect_mid_stream_is_detected(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    oai.chunk_delay = 0.05
    async with oai_client(oai) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[user("a fairly long message to stream")], stream=True
        )
        received = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received == 2:
                break
        await stream.close()
    (record,) = await oai.wait_for_requests(1)
    assert record.outcome == "client_disconnected"
    assert 2 <= record.chunks_sent < oai.reply_for(record.body).output_tokens


async def test_plan_queue_default_and_replacement(sims: dict[str, Any]) -> None:
    oai = sims["oai"]
    oai.plan.replace([Status(429), None], default=Status(503))
    outcomes = []
    async with oai_client(oai) as client:
        for _ in range(4):
            try:
                await client.chat.completions.create(model="gpt-4o", messages=[user("x")])
                outcomes.append("ok")
            except openai.APIStatusError as exc:
                outcomes.append(str(exc.status_code))
            if len(outcomes) == 3:
                oai.plan.heal()  # the provider recovers
    assert outcomes == ["429", "ok", "503", "ok"]
    assert oai.counts() == {"Status(429)": 1, "ok": 2, "Status(503)": 1}


def test_seeded_random_faults_are_reproducible() -> None:
    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan(random_faults=[(0.3, Status(500)), (0.2, Reset())], seed=seed)
        return [f.label if f else None for f in (plan.next_fault() for _ in range(200))]

    first = draws(7)
    assert first == draws(7) and first != draws(8)
    assert 40 < first.count("Status(500)") < 80 and 20 < first.count("Reset") < 60
    with pytest.raises(ValueError):
        FaultPlan(random_faults=[(0.8, Reset()), (0.5, Hang())])


def test_simulator_thread_serves_sync_clients() -> None:
    sim = SimulatedProvider("bg", "openai", ["m"], plan=FaultPlan([Status(500)]))
    with SimulatorThread([sim]) as sims:
        client = openai.OpenAI(base_url=sims["bg"].base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[user("x")])
        resp = client.chat.completions.create(model="m", messages=[user("x")])
        client.close()
    assert resp.choices[0].message.content == reply_text("bg", "m", "x")
    assert not sim.running


# --- Pure reply rules ---------------------------------------------------------------------------


def test_example_arguments_fill_required_properties_by_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "integer"}},
            "o": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
            "u": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "opt": {"type": "string"},
        },
        "required": ["s", "n", "b", "a", "o", "u"],
    }
    assert example_arguments(schema) == {
        "s": "example s",
        "n": 1.5,
        "b": True,
        "a": [1],
        "o": {"x": "example x"},
        "u": None,
    }


def test_reply_rules_for_anthropic_server_tools_and_max_tokens() -> None:
    sim = SimulatedProvider("mm", "anthropic", chunk_chars=4)
    body = {
        "model": "m",
        "max_tokens": 3,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            }
        ],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    reply = sim.reply_for(body)
    assert reply.tool_calls == () and reply.stop is StopReason.MAX_TOKENS
    assert reply.full_text == reply_text("mm", "m", "two")[:12]
    assert reply.text == ("[mm/", "m] Y", "ou s")
    assert sim.reply_for(body) == reply and sim.format is ProviderFormat.ANTHROPIC
