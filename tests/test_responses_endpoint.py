"""`POST /v1/responses` end to end: the captured Codex requests and the official SDK's
`responses.create`, through the real daemon, to OpenAI-format, Anthropic-format and codex
providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import aiohttp
import orjson
import pytest
from codex_sims import codex_keys, seed_store
from conftest import Clients
from openai.types.responses import ResponseStreamEvent
from raw_http import RawResponse, post
from sdk_turns import anthropic_turn, openai_turn
from support import CLIENT_KEY, Daemon, config_text

from proxy.simulate import (
    REFUSE_TRIGGER,
    CutAfter,
    FaultPlan,
    MidStreamError,
    SimulatedProvider,
    Status,
    reasoning_text,
    refusal_text,
    reply_text,
    run_simulated,
    tool_result_text,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]
CAPTURES = Path(__file__).parent / "data" / "captures"
FIRST = "codex-0.169.0_exec_first-request.json"
FOLLOWUP = "codex-0.169.0_exec_function-call-output-followup.json"
# The SDK's model of each event type, by its `type`: every event we send must validate.
EVENTS: dict[str, Any] = {
    get_args(model.model_fields["type"].annotation)[0]: model
    for model in get_args(get_args(ResponseStreamEvent)[0])
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def capture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((CAPTURES / name).read_bytes())
    return loaded


async def replay(proxy: Daemon, name: str) -> RawResponse:
    """POST a captured Codex request as Codex sent it (its headers, our client key)."""
    captured = capture(name)
    headers = {
        k: v for k, v in captured["headers"].items() if k not in ("content-length", "authorization")
    }
    headers["authorization"] = f"Bearer {CLIENT_KEY}"
    return await post(proxy.url + "/v1/responses", captured["body"], headers=headers, key=None)


def fold(response: RawResponse) -> dict[str, Any]:
    """The final response of a Responses stream, checking the event grammar on the way: names
    match types, sequence numbers count from 0, every event parses as the SDK's type, each item
    opens before its deltas and the completed response repeats the finished items."""
    assert response.status == 200, response.body[:500]
    assert response.content_type == "text/event-stream"
    events = response.events()
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"], names
    assert names[-1] in ("response.completed", "response.incomplete"), names
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    done: dict[int, Any] = {}
    opened: set[int] = set()
    for name, data in events:
        assert data["type"] == name
        EVENTS[data["type"]].model_validate(data)
        if name == "response.output_item.added":
            opened.add(data["output_index"])
        elif "output_index" in data:
            assert data["output_index"] in opened, name
        if name == "response.output_item.done":
            done[data["output_index"]] = data["item"]
    final: dict[str, Any] = events[-1][1]["response"]
    assert final["output"] == [done[i] for i in sorted(done)]
    return final


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def calls_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in response["output"] if i["type"] in ("function_call", "custom_tool_call")]


# --- the captured Codex requests ---------------------------------------------------------------


async def test_codex_captures_to_an_openai_provider(daemon: StartDaemon) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        first = fold(await replay(proxy, FIRST))
        followup = fold(await replay(proxy, FOLLOWUP))
        sent_first, sent_followup = (r.body for r in sims["zai"].requests)

    # First turn: Codex's tools offered, so the simulated model calls the first one.
    (call,) = calls_of(first)
    assert (call["type"], call["name"], call["arguments"]) == (
        "function_call",
        "exec_command",
        '{"cmd":"example cmd"}',
    )
    assert first["status"] == "completed"
    messages = sent_first["messages"]
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("You are a coding agent running in the Codex CLI")
    assert [m["role"] for m in messages] == ["system", "user", "user"]
    assert messages[-1]["content"] == "Say hi"
    names = [t["function"]["name"] for t in sent_first["tools"]]
    assert names[0] == "exec_command"
    assert "multi_agent_v1__close_agent" in names  # the namespace, flattened
    assert "web_search" not in str(sent_first["tools"])  # hosted: dropped
    for dropped in ("store", "include", "prompt_cache_key", "client_metadata", "input"):
        assert dropped not in sent_first

    # Follow-up: the function call and its output become a tool round trip.
    captured = {i["type"]: i for i in capture(FOLLOWUP)["body"]["input"]}
    assistant, tool = sent_followup["messages"][-2:]
    assert assistant["tool_calls"] == [
        {
            "id": captured["function_call"]["call_id"],
            "type": "function",
            "function": {"name": "exec_command", "arguments": '{"cmd":"echo hi-from-codex"}'},
        }
    ]
    assert tool == {
        "role": "tool",
        "tool_call_id": captured["function_call"]["call_id"],
        "content": captured["function_call_output"]["output"],
    }
    assert text_of(followup) == tool_result_text(
        "zai", "glm-5", "exec_command", captured["function_call_output"]["output"]
    )


async def test_codex_captures_to_an_anthropic_provider(daemon: StartDaemon) -> None:
    minimax = SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"], reasoning=True)
    async with run_simulated([minimax]) as sims:
        proxy = await daemon(config_text(sims, {"default": "minimax,MiniMax-M2"}))
        first = fold(await replay(proxy, FIRST))
        followup = fold(await replay(proxy, FOLLOWUP))
        sent_first, sent_followup = (r.body for r in sims["minimax"].requests)

    assert [i["type"] for i in first["output"]] == ["reasoning", "function_call"]
    assert first["output"][0]["summary"][0]["text"].startswith("[minimax/MiniMax-M2] Thinking")
    assert calls_of(first)[0]["name"] == "exec_command"
    assert sent_first["system"].startswith("You are a coding agent")
    assert sent_first["tools"][0]["input_schema"]["required"] == ["cmd"]
    assert any(t["name"] == "multi_agent_v1__close_agent" for t in sent_first["tools"])
    call_id = capture(FOLLOWUP)["body"]["input"][-1]["call_id"]
    assistant, user = sent_followup["messages"][-2:]
    assert assistant["content"][-1]["type"] == "tool_use"
    assert assistant["content"][-1]["id"] == call_id
    assert user["content"][0]["type"] == "tool_result"
    assert user["content"][0]["tool_use_id"] == call_id
    assert text_of(followup).startswith("[minimax/MiniMax-M2] Tool exec_command returned:")


async def test_codex_captures_to_a_codex_provider(daemon: StartDaemon, tmp_path: Path) -> None:
    async with run_simulated([SimulatedProvider("codex", "codex", ["gpt-5.2"])]) as sims:
        store = seed_store(sims["codex"], tmp_path / "auth.json")
        proxy = await daemon(
            config_text(
                sims,
                {"default": "codex,gpt-5.2"},
                provider_extra={"codex": codex_keys(sims["codex"], store)},
            )
        )
        first = fold(await replay(proxy, FIRST))
        followup = fold(await replay(proxy, FOLLOWUP))
        sent_first, sent_followup = (r.body for r in sims["codex"].requests)

    original = capture(FIRST)["body"]
    # Passed on as Codex sent it, but for the model, and the leading developer messages, which
    # the backend wants as `instructions` (the captured request has none).
    assert sent_first["model"] == "gpt-5.2"
    assert sent_first["instructions"].startswith("You are a coding agent")
    assert sent_first["input"] == original["input"][2:]
    assert sent_first["tools"] == original["tools"]  # namespace and web_search included
    assert {k: v for k, v in sent_first.items() if k not in ("model", "instructions", "input")} == {
        k: v for k, v in original.items() if k not in ("model", "input")
    }
    assert calls_of(first)[0]["name"] == "exec_command"
    assert sent_followup["input"][-1]["type"] == "function_call_output"
    assert text_of(followup).startswith("[codex/gpt-5.2] Tool exec_command returned:")


# --- the official SDK --------------------------------------------------------------------------


def providers() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"]),
        SimulatedProvider("codex", "codex", ["gpt-5.2"]),
    ]


TARGETS = ["zai,glm-5", "minimax,MiniMax-M2", "codex,gpt-5.2"]


async def sdk_daemon(
    daemon: StartDaemon, sims: dict[str, SimulatedProvider], tmp_path: Path
) -> Daemon:
    store = seed_store(sims["codex"], tmp_path / "auth.json")
    extra = {"codex": codex_keys(sims["codex"], store)}
    return await daemon(config_text(sims, {"default": "zai,glm-5"}, provider_extra=extra))


@pytest.mark.parametrize("target", TARGETS)
async def test_sdk_responses_create(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, target: str
) -> None:
    provider, model = target.split(",")
    async with run_simulated(providers()) as sims:
        client = clients.openai(await sdk_daemon(daemon, sims, tmp_path))
        response = await client.responses.create(model=target, input="Hello there")
        assert response.output_text == reply_text(provider, model, "Hello there")
        assert response.status == "completed"
        assert response.usage is not None and response.usage.output_tokens > 0

        # A tool round trip.
        first = await client.responses.create(
            model=target,
            input="Weather?",
            tools=[WEATHER],  # type: ignore[list-item]
        )
        (call,) = [item for item in first.output if item.type == "function_call"]
        assert (call.name, call.arguments) == ("get_weather", '{"city":"example city"}')
        second = await client.responses.create(
            model=target,
            input=[
                {"role": "user", "content": "Weather?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
            ],
            tools=[WEATHER],  # type: ignore[list-item]
        )
        assert second.output_text == tool_result_text(provider, model, "get_weather", "Sunny")


@pytest.mark.parametrize("target", TARGETS)
async def test_sdk_responses_stream(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, target: str
) -> None:
    provider, model = target.split(",")
    async with run_simulated(providers()) as sims:
        client = clients.openai(await sdk_daemon(daemon, sims, tmp_path))
        stream = await client.responses.create(model=target, input="Hello there", stream=True)
        deltas: list[str] = []
        final = None
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                final = event.response
        expected = reply_text(provider, model, "Hello there")
        assert "".join(deltas) == expected and len(deltas) > 1
        assert final is not None and final.output_text == expected

        async with client.responses.stream(
            model=target,
            input="Weather?",
            tools=[WEATHER],  # type: ignore[list-item]
        ) as events:
            done = await events.get_final_response()
        (call,) = [i for i in done.output if i.type == "function_call"]
        assert call.name == "get_weather" and call.arguments == '{"city":"example city"}'


# --- tools a flat provider cannot express ------------------------------------------------------


NAMESPACE = {
    "type": "namespace",
    "name": "crm",
    "description": "Customer records",
    "tools": [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find a customer",
            "parameters": {
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
            },
        }
    ],
}
CUSTOM = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_namespaced_and_custom_calls_come_back_as_declared(
    daemon: StartDaemon, stream: bool
) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        url = proxy.url + "/v1/responses"
        body: dict[str, Any] = {
            "model": "auto",
            "input": "Find bob",
            "tools": [NAMESPACE],
            "stream": stream,
        }
        namespaced = await post(url, body)
        custom = await post(url, {**body, "tools": [CUSTOM]})
        sent = [r.body for r in sims["zai"].requests]

    found = fold(namespaced) if stream else namespaced.json()
    (call,) = calls_of(found)
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "crm", "lookup")
    assert call["arguments"] == '{"email":"example email"}'
    found = fold(custom) if stream else custom.json()
    (call,) = calls_of(found)
    assert (call["type"], call["name"], call["input"]) == (
        "custom_tool_call",
        "apply_patch",
        "example input",
    )
    assert sent[0]["tools"][0]["function"]["name"] == "crm__lookup"
    patch = sent[1]["tools"][0]["function"]
    assert patch["parameters"]["required"] == ["input"]
    assert "start: /.+/" in patch["description"]  # the grammar travels in the description


# --- whole answers from every provider format: one reply model ---------------------------------


def thinking_providers() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], reasoning=True),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"], reasoning=True),
        SimulatedProvider("codex", "codex", ["gpt-5.2"], reasoning=True),
    ]


@pytest.mark.parametrize("target", TARGETS)
async def test_sdk_whole_answers_carry_reasoning_calls_refusals_and_usage(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, target: str
) -> None:
    """Every provider's whole reply is read into the neutral events and rendered once as a
    Responses object, which the openai SDK parses: reasoning, text, a function call, a custom
    call with its raw input, a refusal, usage."""
    provider, model = target.split(",")
    async with run_simulated(thinking_providers()) as sims:
        client = clients.openai(await sdk_daemon(daemon, sims, tmp_path))
        hello = await client.responses.create(model=target, input="Hello there")
        weather = await client.responses.create(
            model=target,
            input="Weather?",
            tools=[WEATHER],  # type: ignore[list-item]
        )
        patch = await client.responses.create(
            model=target,
            input="Patch it",
            tools=[CUSTOM],  # type: ignore[list-item]
        )
        refused = await client.responses.create(model=target, input=REFUSE_TRIGGER + " the plan")

    assert [item.type for item in hello.output] == ["reasoning", "message"]
    summary = hello.output[0].summary  # type: ignore[union-attr]
    assert [part.text for part in summary] == [reasoning_text(provider, model, "Hello there")]
    assert hello.output_text == reply_text(provider, model, "Hello there")
    assert hello.status == "completed" and hello.id.startswith("resp_")
    assert hello.usage is not None and hello.usage.input_tokens > 0
    assert hello.usage.output_tokens > 0
    assert hello.usage.total_tokens == hello.usage.input_tokens + hello.usage.output_tokens
    if provider != "minimax":  # Anthropic does not count thinking tokens apart
        assert hello.usage.output_tokens_details.reasoning_tokens > 0

    (call,) = [item for item in weather.output if item.type == "function_call"]
    assert (call.name, call.arguments) == ("get_weather", '{"city":"example city"}')
    assert weather.status == "completed"

    (custom,) = [item for item in patch.output if item.type == "custom_tool_call"]
    assert (custom.name, custom.input) == ("apply_patch", "example input")
    assert custom.call_id

    said = refusal_text(provider, model)
    (message,) = [item for item in refused.output if item.type == "message"]
    if provider == "minimax":  # Anthropic refuses in text, with stop reason `refusal`
        assert refused.output_text == said
        assert refused.status == "incomplete"
        assert refused.incomplete_details is not None
        assert refused.incomplete_details.reason == "content_filter"
    else:
        assert [(p.type, getattr(p, "refusal", None)) for p in message.content] == [
            ("refusal", said)
        ]
        assert refused.output_text == "" and refused.status == "completed"


@pytest.mark.parametrize("target", TARGETS)
async def test_streamed_refusals_and_custom_calls_keep_their_kind(
    daemon: StartDaemon, tmp_path: Path, target: str
) -> None:
    """The same answers streamed: every event parses as the SDK's, and the final response is
    the one a whole answer gets."""
    provider, model = target.split(",")
    async with run_simulated(thinking_providers()) as sims:
        proxy = await sdk_daemon(daemon, sims, tmp_path)
        url = proxy.url + "/v1/responses"
        body = {"model": target, "stream": True}
        refused = fold(await post(url, {**body, "input": REFUSE_TRIGGER + " the plan"}))
        patch = fold(await post(url, {**body, "input": "Patch it", "tools": [CUSTOM]}))

    said = refusal_text(provider, model)
    parts = [p for i in refused["output"] if i["type"] == "message" for p in i["content"]]
    if provider == "minimax":
        assert parts == [{"type": "output_text", "text": said, "annotations": [], "logprobs": []}]
    else:
        assert parts == [{"type": "refusal", "refusal": said}]
    (custom,) = calls_of(patch)
    assert (custom["type"], custom["name"], custom["input"]) == (
        "custom_tool_call",
        "apply_patch",
        "example input",
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_codex_refusal_is_a_chat_refusal_and_anthropic_text(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, stream: bool
) -> None:
    said = refusal_text("codex", "gpt-5.2")
    question = [{"role": "user", "content": REFUSE_TRIGGER + " the plan"}]
    async with run_simulated(thinking_providers()) as sims:
        proxy = await sdk_daemon(daemon, sims, tmp_path)
        chat = await openai_turn(
            clients.openai(proxy), question, stream=stream, model="codex,gpt-5.2"
        )
        messages = await anthropic_turn(
            clients.anthropic(proxy), question, stream=stream, model="codex,gpt-5.2"
        )
    message = chat.raw.choices[0].message if stream else chat.raw["choices"][0]["message"]
    refusal = message.refusal if stream else message["refusal"]
    assert (chat.text, refusal, chat.stop) == ("", said, "stop")
    assert (messages.text, messages.stop) == (said, "end_turn")


async def test_a_stream_cut_after_a_custom_call_ends_honestly(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """A custom call the client already has cannot be continued elsewhere: the cut (inside the
    next call's arguments) ends the stream with `response.failed`, not with a takeover that
    would answer the question again."""
    cut = FaultPlan([CutAfter(6)])  # the custom call's 5 input pieces, then 1 of the next call's
    codex = SimulatedProvider("codex", "codex", ["gpt-5.2"], parallel_tool_calls=2, plan=cut)
    async with run_simulated([codex, SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        store = seed_store(sims["codex"], tmp_path / "auth.json")
        extra = {"codex": codex_keys(sims["codex"], store)}
        proxy = await daemon(
            config_text(sims, {"default": "codex,gpt-5.2|zai,glm-5"}, provider_extra=extra)
        )
        body = {"model": "auto", "input": "Patch it", "tools": [CUSTOM, WEATHER], "stream": True}
        response = await post(proxy.url + "/v1/responses", body)
        served_by_zai = len(sims["zai"].requests)

    events = response.events()
    added = [data["item"]["type"] for name, data in events if name == "response.output_item.added"]
    assert added == ["custom_tool_call"]  # the next call is held back until it is whole
    name, failed = events[-1]
    assert name == "response.failed"
    assert "already contains a tool call" in failed["response"]["error"]["message"]
    assert served_by_zai == 0


# --- errors and the WebSocket probe ------------------------------------------------------------


async def test_websocket_probe_is_refused_so_codex_uses_http(daemon: StartDaemon) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        headers = {
            "authorization": f"Bearer {CLIENT_KEY}",
            "connection": "Upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url + "/v1/responses", headers=headers) as probe:
                assert probe.status == 426
                assert (await probe.json())["error"]["code"] == "websocket_not_supported"
            async with session.get(
                proxy.url + "/v1/responses", headers={"authorization": f"Bearer {CLIENT_KEY}"}
            ) as plain:
                assert plain.status == 405


async def test_stored_responses_are_refused(daemon: StartDaemon) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        answer = await post(
            proxy.url + "/v1/responses",
            {"model": "auto", "input": "Hi", "previous_response_id": "resp_1"},
        )
        missing = await post(proxy.url + "/v1/responses", {"model": "auto"})
    assert answer.status == 400
    assert answer.json()["error"]["param"] == "previous_response_id"
    assert missing.status == 400 and missing.json()["error"]["param"] == "input"


async def test_exhausted_chain_answers_in_the_openai_shape(daemon: StartDaemon) -> None:
    zai = SimulatedProvider("zai", "openai", ["glm-5"], plan=FaultPlan.always(Status(503)))
    async with run_simulated([zai]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        answer = await post(proxy.url + "/v1/responses", {"model": "auto", "input": "Hi"})
    assert answer.status == 502
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert error["message"].startswith("all targets failed")
    assert answer.headers["x-llmproxy-attempts"].startswith("zai,glm-5=503")


async def test_a_stream_that_breaks_ends_with_response_failed(daemon: StartDaemon) -> None:
    zai = SimulatedProvider(
        "zai", "openai", ["glm-5"], plan=FaultPlan.always(MidStreamError(chunks=2))
    )
    async with run_simulated([zai]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        answer = await post(
            proxy.url + "/v1/responses", {"model": "auto", "input": "Hi", "stream": True}
        )
    events = answer.events()
    name, data = events[-1]
    assert name == "response.failed"
    EVENTS[data["type"]].model_validate(data)
    assert data["response"]["status"] == "failed"
    assert data["response"]["error"]["code"] == "server_error"
    assert "response.completed" not in [n for n, _ in events]
