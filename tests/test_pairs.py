"""Every (client format x provider format) pair, through the real daemon, with the official SDKs.

OpenAI client -> OpenAI provider, OpenAI -> Anthropic, Anthropic -> OpenAI, Anthropic ->
Anthropic; streaming and not; a plain question, and a tool round trip (call -> result -> final
answer). The simulated providers' reply rules (`proxy.simulate.scripts`) predict every byte of
content, so the assertions are exact: text, reasoning kept apart from visible text, tool-call ids
carried from provider to client and back, arguments, stop reasons and usage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import Clients
from raw_http import post
from sdk_turns import (
    Turn,
    anthropic_tool_results,
    anthropic_turn,
    openai_tool_results,
    openai_turn,
)
from support import Daemon, config_text

from proxy.simulate import (
    REFUSE_TRIGGER,
    SimulatedProvider,
    example_arguments,
    reasoning_text,
    refusal_text,
    reply_text,
    run_simulated,
    tool_result_text,
)
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.translate.stream_openai import OpenAIStreamDecoder
from proxy.types import StopReason, TextDelta

StartDaemon = Callable[[str], Awaitable[Daemon]]

PROVIDERS = {"openai": ("zai", "glm-5"), "anthropic": ("minimax", "MiniMax-M2")}
QUESTION = "What is the weather in Paris, and which files mention it?"

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1},
    },
    "required": ["city", "unit", "days"],
}
SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pattern": {"type": "string"},
        "paths": {"type": "array", "items": {"type": "string"}},
        "recursive": {"type": "boolean"},
        "depth": {"type": "number"},
    },
    "required": ["pattern", "paths", "recursive", "depth"],
}
TOOL_SCHEMAS = {"get_weather": WEATHER_SCHEMA, "search_files": SEARCH_SCHEMA}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": name, "description": f"The {name} tool", "parameters": schema},
    }
    for name, schema in TOOL_SCHEMAS.items()
]
ANTHROPIC_TOOLS = [
    {"name": name, "description": f"The {name} tool", "input_schema": schema}
    for name, schema in TOOL_SCHEMAS.items()
]

# Each client's spelling of the neutral stop reasons.
STOPS = {
    "openai": {
        StopReason.END_TURN: "stop",
        StopReason.TOOL_USE: "tool_calls",
        StopReason.MAX_TOKENS: "length",
    },
    "anthropic": {
        StopReason.END_TURN: "end_turn",
        StopReason.TOOL_USE: "tool_use",
        StopReason.MAX_TOKENS: "max_tokens",
    },
}

PAIRS = [
    pytest.param(client, provider, id=f"{client}-client-to-{provider}-provider")
    for client in ("openai", "anthropic")
    for provider in ("openai", "anthropic")
]
STREAM = [pytest.param(False, id="json"), pytest.param(True, id="stream")]


def simulated(provider_format: str, **options: Any) -> SimulatedProvider:
    name, model = PROVIDERS[provider_format]
    return SimulatedProvider(name, provider_format, [model], **options)


async def ask(
    clients: Clients,
    proxy: Daemon,
    client_format: str,
    history: list[dict[str, Any]],
    *,
    stream: bool,
    tools: bool = False,
    **params: Any,
) -> Turn:
    if client_format == "openai":
        if tools:
            params["tools"] = OPENAI_TOOLS
        return await openai_turn(clients.openai(proxy), history, stream=stream, **params)
    if tools:
        params["tools"] = ANTHROPIC_TOOLS
    return await anthropic_turn(clients.anthropic(proxy), history, stream=stream, **params)


def tool_results(client_format: str, results: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if client_format == "openai":
        return openai_tool_results(results)
    return anthropic_tool_results(results)


def upstream_bodies(sim: SimulatedProvider) -> list[dict[str, Any]]:
    assert all(r.outcome == "ok" for r in sim.requests), [r.outcome for r in sim.requests]
    return [r.body for r in sim.requests]


def assert_usage(turn: Turn, sim: SimulatedProvider, body: dict[str, Any]) -> None:
    """The provider's own counts reach the client, whichever format reported them."""
    reply = sim.reply_for(body)
    assert (turn.input_tokens, turn.output_tokens) == (reply.input_tokens, reply.output_tokens)


def upstream_tool_ids(provider_format: str, body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ids of the assistant's tool calls, ids the tool results answer) in an upstream body."""
    calls: list[str] = []
    results: list[str] = []
    for message in body["messages"]:
        if provider_format == "openai":
            calls += [c["id"] for c in message.get("tool_calls") or []]
            if message["role"] == "tool":
                results.append(message["tool_call_id"])
            continue
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] == "tool_use":
                calls.append(block["id"])
            elif block["type"] == "tool_result":
                results.append(block["tool_use_id"])
    return calls, results


@pytest.mark.parametrize("reasoning", [False, True], ids=["plain", "reasoning"])
@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client_format", "provider_format"), PAIRS)
async def test_plain_question(
    clients: Clients,
    daemon: StartDaemon,
    client_format: str,
    provider_format: str,
    stream: bool,
    reasoning: bool,
) -> None:
    name, model = PROVIDERS[provider_format]
    async with run_simulated([simulated(provider_format, reasoning=reasoning)]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        history = [{"role": "user", "content": QUESTION}]
        turn = await ask(clients, proxy, client_format, history, stream=stream)
        (body,) = upstream_bodies(sims[name])
        assert body["model"] == model
        assert body.get("stream", False) is stream
        assert_usage(turn, sims[name], body)

    assert turn.text == reply_text(name, model, QUESTION)
    assert turn.reasoning == (reasoning_text(name, model, QUESTION) if reasoning else "")
    assert "Thinking about" not in turn.text
    assert turn.calls == ()
    assert turn.stop == STOPS[client_format][StopReason.END_TURN]
    assert turn.model == model


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client_format", "provider_format"), PAIRS)
async def test_a_refusal_stays_a_refusal_where_the_client_api_has_one(
    clients: Clients, daemon: StartDaemon, client_format: str, provider_format: str, stream: bool
) -> None:
    """A chat `refusal` reaches a chat client as `refusal`; Anthropic has no refusal channel,
    so from or to Anthropic it is the answer's text (and Anthropic's `refusal` stop reason is a
    chat `content_filter`)."""
    name, model = PROVIDERS[provider_format]
    async with run_simulated([simulated(provider_format)]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        history = [{"role": "user", "content": REFUSE_TRIGGER + " the plan"}]
        turn = await ask(clients, proxy, client_format, history, stream=stream)

    said = refusal_text(name, model)
    if client_format == "openai":
        raw = turn.raw
        refusal = (
            raw.choices[0].message.refusal if stream else raw["choices"][0]["message"]["refusal"]
        )
        said_as = ("", said) if provider_format == "openai" else (said, None)
        assert (turn.text, refusal) == said_as
    else:
        assert turn.text == said
    refused_by_anthropic = {"openai": "content_filter", "anthropic": "refusal"}
    ended = {"openai": "stop", "anthropic": "end_turn"}
    stops = refused_by_anthropic if provider_format == "anthropic" else ended
    assert turn.stop == stops[client_format]


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client_format", "provider_format"), PAIRS)
async def test_max_tokens_cut_maps_to_the_clients_length_reason(
    clients: Clients, daemon: StartDaemon, client_format: str, provider_format: str, stream: bool
) -> None:
    name, model = PROVIDERS[provider_format]
    async with run_simulated([simulated(provider_format)]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        history = [{"role": "user", "content": QUESTION}]
        limit = {"max_tokens": 3}
        turn = await ask(clients, proxy, client_format, history, stream=stream, **limit)
        (body,) = upstream_bodies(sims[name])
        assert_usage(turn, sims[name], body)
    full = reply_text(name, model, QUESTION)
    assert turn.text == full[: 3 * 8]  # three 8-character chunks, one token each
    assert turn.stop == STOPS[client_format][StopReason.MAX_TOKENS]


@pytest.mark.parametrize(
    "parallel", [pytest.param(1, id="one-call"), pytest.param(2, id="parallel-after-text")]
)
@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client_format", "provider_format"), PAIRS)
async def test_tool_round_trip(
    clients: Clients,
    daemon: StartDaemon,
    client_format: str,
    provider_format: str,
    stream: bool,
    parallel: int,
) -> None:
    """call -> result -> final answer, with a reasoning model: the ids the provider minted come
    back to it on the tool results, and thinking signed by an Anthropic provider survives the
    trip when the client speaks Anthropic too (the simulator rejects a bad signature)."""
    name, model = PROVIDERS[provider_format]
    sim = simulated(
        provider_format,
        reasoning=True,
        parallel_tool_calls=parallel,
        text_before_tool=parallel > 1,
    )
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": f"{name},{model}"}))
        history: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        first = await ask(clients, proxy, client_format, history, stream=stream, tools=True)

        (first_body,) = upstream_bodies(sims[name])
        minted = sims[name].reply_for(first_body).tool_calls
        names = list(TOOL_SCHEMAS)[:parallel]
        assert [c.id for c in first.calls] == [c.id for c in minted]
        assert [c.name for c in first.calls] == names
        for call in first.calls:
            assert call.arguments == example_arguments(TOOL_SCHEMAS[call.name])
        assert first.stop == STOPS[client_format][StopReason.TOOL_USE]
        assert first.text == (f"[{name}/{model}] Calling get_weather." if parallel > 1 else "")
        assert first.reasoning == reasoning_text(name, model, QUESTION)
        assert_usage(first, sims[name], first_body)

        results = [(c.id, f"{c.name} says: sunny,   21 degrees\nin Paris") for c in first.calls]
        history += [first.assistant, *tool_results(client_format, results)]
        final = await ask(clients, proxy, client_format, history, stream=stream, tools=True)

        second_body = upstream_bodies(sims[name])[1]
        ids = [c.id for c in minted]
        assert upstream_tool_ids(provider_format, second_body) == (ids, ids)
        assert_usage(final, sims[name], second_body)

    # An OpenAI-format model answers the last tool message; an Anthropic-format one the first
    # tool_result block of the last user message.
    answered = results[-1] if provider_format == "openai" else results[0]
    tool_name = next(c.name for c in first.calls if c.id == answered[0])
    assert final.text == tool_result_text(name, model, tool_name, answered[1])
    assert final.reasoning == reasoning_text(name, model, answered[1])
    assert final.calls == ()
    assert final.stop == STOPS[client_format][StopReason.END_TURN]
    assert "Thinking about" not in first.text + final.text


@pytest.mark.parametrize("stream", STREAM)
async def test_minimax_case_tool_calls_come_back_in_openai_shape(
    daemon: StartDaemon, stream: bool
) -> None:
    """An OpenAI client with OpenAI-style tools, routed to an Anthropic-format provider, gets
    its tool calls as OpenAI wire JSON: checked on the raw bytes, not through an SDK."""
    sim = simulated("anthropic", parallel_tool_calls=2, chunk_chars=5)
    body: dict[str, Any] = {
        "model": "auto",
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": OPENAI_TOOLS,
        "tool_choice": "auto",
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": "minimax,MiniMax-M2"}))
        response = await post(proxy.openai_base + "/chat/completions", body)
        (record,) = sims["minimax"].requests
    assert response.status == 200, response.body
    assert record.body["tools"] == ANTHROPIC_TOOLS
    assert record.body["tool_choice"] == {"type": "auto"}
    reply = sim.reply_for(record.body)
    assert [c.id[:6] for c in reply.tool_calls] == ["toolu_", "toolu_"]
    expected_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in reply.tool_calls
    ]
    if not stream:
        (choice,) = response.json()["choices"]
        assert choice["message"]["content"] is None
        assert choice["message"]["tool_calls"] == expected_calls
        assert choice["finish_reason"] == "tool_calls"
        return

    events = response.events()
    assert events[-1] == ("", "[DONE]")
    chunks = [data for _, data in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for part in delta.get("tool_calls") or []:
            index = part["index"]
            if index not in calls:  # the first delta of a call names it, exactly once
                assert set(part) == {"index", "id", "type", "function"}
                assert part["type"] == "function" and part["function"]["name"]
                calls[index] = {
                    "id": part["id"],
                    "type": "function",
                    "function": {"name": part["function"]["name"], "arguments": ""},
                }
            else:
                assert set(part) == {"index", "function"} and set(part["function"]) == {"arguments"}
            calls[index]["function"]["arguments"] += part["function"].get("arguments", "")
    assert [calls[i] for i in sorted(calls)] == expected_calls
    assert sorted(calls) == [0, 1]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}


def test_provider_chunks_of_the_wrong_shape_are_skipped() -> None:
    """A compatible server's odd chunk (`choices: true`, a list as block index) is ignored, not
    a crash that would bypass fallback before the commit point or break a committed stream."""
    openai_side = OpenAIStreamDecoder()
    events = openai_side.feed(None, {"id": "c1", "model": "m", "choices": True})
    events += openai_side.feed(
        None,
        {
            "id": "c1",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
        },
    )
    events += openai_side.close()
    assert [type(e).__name__ for e in events] == ["MessageStart", "TextDelta", "Finish"]

    anthropic_side = AnthropicStreamDecoder()
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    odd = {
        "type": "content_block_delta",
        "index": [0],
        "delta": {"type": "text_delta", "text": "lost"},
    }
    good = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "kept"},
    }
    texts = [
        e.text
        for name, payload in [
            ("content_block_start", start),
            ("content_block_delta", odd),
            ("content_block_delta", good),
        ]
        for e in anthropic_side.feed(name, payload)
        if isinstance(e, TextDelta)
    ]
    assert texts == ["kept"]
