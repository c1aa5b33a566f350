"""Whole (non-streaming) replies keep the rules a stream of the same answer follows.

The quirky bodies below are what OpenAI- and Anthropic-compatible servers really send (a call
ending in "stop", OpenRouter's `reasoning`, inline `<think>`, object arguments, vLLM's matched
stop); the simulated provider answers with them verbatim (`Status(200, body)`), and the official
SDKs read what the daemon makes of them. A same-format body that needs none of this passes as it
is, fields llmproxy does not model included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.client_dialects import ANTHROPIC, OPENAI
from proxy.simulate import FaultPlan, SimulatedProvider, Status, reply_text, run_simulated
from proxy.translate.replies import (
    RENDERERS,
    accumulated,
    anthropic_reply_events,
    openai_reply_events,
)
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.translate.stream_openai import OpenAIStreamDecoder
from proxy.types import (
    ClientAPI,
    CustomToolCall,
    Finish,
    JSONObject,
    MessageStart,
    StopReason,
    StreamEvent,
    TextDelta,
    UpstreamFault,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
HELLO = [{"role": "user", "content": "hello"}]


def chat_reply(message: JSONObject, finish: str, **choice: Any) -> JSONObject:
    return {
        "id": "chatcmpl-quirk",
        "object": "chat.completion",
        "created": 1772000000,
        "model": "glm-5",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
            | choice
        ],
        "usage": USAGE,
    }


def anthropic_reply(content: list[JSONObject], stop: str, **extra: Any) -> JSONObject:
    return {
        "id": "msg_quirk",
        "type": "message",
        "role": "assistant",
        "model": "MiniMax-M2.5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5},
    } | extra


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather"}}


async def served(daemon: StartDaemon, fmt: str, body: JSONObject) -> tuple[Daemon, Any]:
    """A daemon in front of a provider of `fmt` that answers with `body` (the caller enters
    the returned context manager around its requests)."""
    name, model = ("zai", "glm-5") if fmt == "openai" else ("minimax", "MiniMax-M2.5")
    provider = SimulatedProvider(name, fmt, [model], plan=FaultPlan.always(Status(200, body)))
    sims = run_simulated([provider])
    running = await sims.__aenter__()
    proxy = await daemon(config_text(running, {"default": f"{name},{model}"}))
    return proxy, sims


async def chat_answer(clients: Clients, daemon: StartDaemon, body: JSONObject) -> Any:
    proxy, sims = await served(daemon, "openai", body)
    try:
        return await clients.openai(proxy).chat.completions.create(model="auto", messages=HELLO)  # type: ignore[arg-type]
    finally:
        await sims.__aexit__(None, None, None)


async def test_a_chat_reply_with_calls_ending_in_stop_ends_with_tool_calls(
    clients: Clients, daemon: StartDaemon
) -> None:
    """As a stream of it would: an agent runs the calls only when told `tool_calls`; object
    arguments become the JSON text the SDK parses; a leading `<think>` is reasoning."""
    call = {**CALL, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    body = chat_reply({"content": "<think>plan</think>Checking.", "tool_calls": [call]}, "stop")
    completion = await chat_answer(clients, daemon, body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert (choice.message.model_extra or {})["reasoning_content"] == "plan"
    (tool_call,) = choice.message.tool_calls or []
    assert orjson.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert completion.usage is not None and completion.usage.prompt_tokens == 12


async def test_openrouter_reasoning_reaches_a_chat_client_as_reasoning_content(
    clients: Clients, daemon: StartDaemon
) -> None:
    body = chat_reply({"content": "Hi.", "reasoning": "greet back"}, "stop")
    message = (await chat_answer(clients, daemon, body)).choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "greet back"
    assert "reasoning" not in (message.model_extra or {})
    assert message.content == "Hi."


async def test_a_plain_chat_reply_passes_as_it_is(clients: Clients, daemon: StartDaemon) -> None:
    """Nothing to normalise: fields llmproxy does not model (`system_fingerprint`, a
    provider's own usage details) reach the client; only `model` names the served model."""
    call = {**CALL, "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    body = chat_reply({"content": None, "tool_calls": [call]}, "tool_calls")
    body |= {"system_fingerprint": "fp_quirk", "usage": {**USAGE, "queue_time": 0.01}}
    completion = await chat_answer(clients, daemon, body)
    assert completion.system_fingerprint == "fp_quirk"
    assert completion.id == "chatcmpl-quirk"
    assert (completion.usage.model_extra or {})["queue_time"] == 0.01  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_an_anthropic_reply_with_a_tool_use_ending_in_end_turn_ends_with_tool_use(
    clients: Clients, daemon: StartDaemon
) -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    body = anthropic_reply([{"type": "text", "text": "Checking."}, tool], "end_turn")
    proxy, sims = await served(daemon, "anthropic", body)
    try:
        message = await clients.anthropic(proxy).messages.create(
            model="auto", max_tokens=64, messages=HELLO
        )  # type: ignore[arg-type]
    finally:
        await sims.__aexit__(None, None, None)
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]


async def test_an_anthropic_reply_with_server_tool_blocks_passes_as_it_is(
    clients: Clients, daemon: StartDaemon
) -> None:
    search = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "weather"},
    }
    body = anthropic_reply([search, {"type": "text", "text": "Sunny."}], "end_turn")
    proxy, sims = await served(daemon, "anthropic", body)
    try:
        message = await clients.anthropic(proxy).messages.create(
            model="auto", max_tokens=64, messages=HELLO
        )  # type: ignore[arg-type]
    finally:
        await sims.__aexit__(None, None, None)
    assert [block.type for block in message.content] == ["server_tool_use", "text"]
    assert message.id == "msg_quirk"


async def test_a_matched_stop_sequence_reaches_an_anthropic_client(
    clients: Clients, daemon: StartDaemon
) -> None:
    """vLLM names the stop sequence that ended generation: an Anthropic client gets
    `stop_sequence`, whole as streamed (`test_the_chat_stream_decoder_reads_a_matched_stop`)."""
    body = chat_reply({"content": "1, 2, 3"}, "stop", stop_reason="</list>")
    proxy, sims = await served(daemon, "openai", body)
    try:
        message = await clients.anthropic(proxy).messages.create(
            model="auto", max_tokens=64, messages=HELLO, stop_sequences=["</list>"]
        )  # type: ignore[arg-type]
    finally:
        await sims.__aexit__(None, None, None)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "</list>")


# --- The same answer, whole or streamed, decodes into the same events ------------------------


def test_the_chat_stream_decoder_reads_a_matched_stop() -> None:
    decoder = OpenAIStreamDecoder()
    head = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "1, 2"}}]}
    end = {"index": 0, "delta": {}, "finish_reason": "stop", "matched_stop": "</list>"}
    events = [*decoder.feed(None, head), *decoder.feed(None, {"choices": [end]}), *decoder.close()]
    assert Finish(StopReason.STOP_SEQUENCE, "</list>") in events


def test_the_chat_stream_decoder_reads_custom_tool_calls() -> None:
    """A call to a custom tool streamed in pieces of `custom.input` is one CustomToolCall, as
    the whole reader makes of the same call."""
    decoder = OpenAIStreamDecoder()
    start = {"index": 0, "id": "call_p", "type": "custom", "custom": {"name": "apply_patch"}}
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [start]}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "custom": {"input": "*** Begin"}}]},
                }
            ]
        },
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "custom": {"input": " Patch"}}]}}
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    streamed = [event for chunk in chunks for event in decoder.feed(None, chunk)]
    streamed += decoder.close()
    call = {
        "id": "call_p",
        "type": "custom",
        "custom": {"name": "apply_patch", "input": "*** Begin Patch"},
    }
    whole = openai_reply_events(chat_reply({"content": None, "tool_calls": [call]}, "tool_calls"))
    expected = CustomToolCall(0, "call_p", "apply_patch", "*** Begin Patch")
    assert expected in streamed and expected in whole


def _anthropic_stream(message: JSONObject) -> list[tuple[str, JSONObject]]:
    """The SSE events Anthropic streams for `message`, block by block."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    events: list[tuple[str, JSONObject]] = [("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}}.get(kind)
        opened = {"type": kind, **(empty or {})}
        if kind in ("redacted_thinking", "tool_use"):
            opened = {**block, "input": {}} if kind == "tool_use" else block
        events.append(("content_block_start", {"index": index, "content_block": opened}))
        deltas: list[JSONObject] = []
        if kind == "text":
            deltas = [{"type": "text_delta", "text": block["text"]}]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            partial = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": partial}]
        events += [("content_block_delta", {"index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    events.append(("message_delta", {"delta": delta, "usage": message["usage"]}))
    events.append(("message_stop", {}))
    return [(name, {"type": name, **payload}) for name, payload in events]


SIGNED = anthropic_reply(
    [
        {"type": "thinking", "thinking": "first", "signature": "sig-1"},
        {"type": "thinking", "thinking": "second", "signature": "sig-2"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Done"},
    ],
    "stop_sequence",
    stop_sequence="</done>",
)


@pytest.mark.parametrize("client", list(ClientAPI))
def test_a_whole_anthropic_reply_renders_as_its_stream_does(client: ClientAPI) -> None:
    """Signatures, redacted thinking and the stop sequence survive a whole reply as they do
    its stream: two signed thinking blocks are two reasoning items for a Responses client."""
    decoder = AnthropicStreamDecoder()
    streamed: list[StreamEvent] = []
    for name, payload in _anthropic_stream(SIGNED):
        streamed += [e for e in decoder.feed(name, payload) if not isinstance(e, UpstreamFault)]
    whole = RENDERERS[client](accumulated(anthropic_reply_events(SIGNED)), "m", {}, 1)
    live = RENDERERS[client](accumulated(streamed), "m", {}, 1)
    assert whole == live
    if client is ClientAPI.RESPONSES:
        kinds = [item["type"] for item in whole["output"]]
        assert kinds == ["reasoning", "reasoning", "message"]
    if client is ClientAPI.ANTHROPIC:
        assert [b["type"] for b in whole["content"]] == [b["type"] for b in SIGNED["content"]]
        assert whole["stop_sequence"] == "</done>"


# --- One estimate, one stop rule, one fallback id, whole or streamed ---------------------------

NO_USAGE: list[StreamEvent] = [
    MessageStart("", "m"),
    TextDelta("Calling it."),
    CustomToolCall(0, "", "apply_patch", "*** Begin Patch"),
    Finish(StopReason.STOP_SEQUENCE, "</x>"),
]


def _sse_payloads(raw: bytes) -> list[JSONObject]:
    return [
        orjson.loads(line[len(b"data: ") :])
        for line in raw.split(b"\n")
        if line.startswith(b"data: {")
    ]


def test_a_streamed_chat_answer_without_usage_reports_the_whole_answers_estimate() -> None:
    """The upstream reported no usage: the chat stream's usage chunk says what the same answer
    whole says, prompt tokens (the request's estimate) included."""
    body: JSONObject = {"stream_options": {"include_usage": True}}
    encoder = OPENAI.stream_encoder("m", body, 42)
    raw = b"".join(encoder.encode(event) for event in NO_USAGE) + encoder.finish()
    streamed = _sse_payloads(raw)[-1]["usage"]
    whole = RENDERERS[ClientAPI.OPENAI](accumulated(NO_USAGE, input_tokens=42), "m", {}, 1)
    assert streamed == whole["usage"]
    assert streamed["prompt_tokens"] == 42


def test_an_anthropic_answer_ends_alike_whole_or_streamed() -> None:
    """A tool call overrides the stop sequence (and it is not reported), the estimated output
    is the same, and a call without an id gets the same fallback id."""
    encoder = ANTHROPIC.stream_encoder("m", {}, 42)
    raw = b"".join(encoder.encode(event) for event in NO_USAGE) + encoder.finish()
    payloads = _sse_payloads(raw)
    message_id = payloads[0]["message"]["id"]
    whole = accumulated(NO_USAGE, input_tokens=42).to_anthropic("m", message_id=message_id)
    (delta,) = [p for p in payloads if p["type"] == "message_delta"]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert (whole["stop_reason"], whole["stop_sequence"]) == ("tool_use", None)
    assert delta["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    (started,) = [
        p["content_block"]
        for p in payloads
        if p["type"] == "content_block_start" and p["content_block"]["type"] == "tool_use"
    ]
    assert started["id"] == whole["content"][1]["id"]


async def test_a_chat_reply_without_usage_gets_the_estimate_a_stream_reports(
    clients: Clients, daemon: StartDaemon
) -> None:
    body = chat_reply({"content": "A reply of some length."}, "stop")
    del body["usage"]
    completion = await chat_answer(clients, daemon, body)
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert completion.choices[0].message.content == "A reply of some length."


# --- Whole replies end as their streams do (second review) -------------------------------------


@pytest.mark.parametrize(
    ("finish", "said"),
    [
        ("sensitive", "content_filter"),  # Z.ai
        ("eos", "stop"),
        ("network_error", "stop"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
        ("content_filter", "content_filter"),
    ],
)
async def test_a_chat_reply_s_finish_reason_is_the_one_its_stream_says(
    clients: Clients, daemon: StartDaemon, finish: str | None, said: str
) -> None:
    """Non-standard finish reasons reached a chat client unchanged when not streamed."""
    completion = await chat_answer(clients, daemon, chat_reply({"content": "Hi."}, finish))  # type: ignore[arg-type]
    assert completion.choices[0].finish_reason == said
    assert completion.choices[0].message.content == "Hi."
    if finish is None:  # streamed, no finish reason is a cut stream (failover), not an end
        return
    decoder = OpenAIStreamDecoder()
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi."}}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    events = [*decoder.feed(None, chunk), *decoder.feed(None, end), *decoder.close()]
    encoder = OPENAI.stream_encoder("m", {}, 0)
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    finishes = [c["choices"][0]["finish_reason"] for c in _sse_payloads(raw) if c["choices"]]
    assert finishes[-1] == said


@pytest.mark.parametrize(
    ("stop", "said"),
    [
        (None, "end_turn"),
        ("weird_new_reason", "end_turn"),
        ("model_context_window_exceeded", "max_tokens"),
    ],
)
async def test_an_anthropic_reply_s_stop_reason_is_the_one_its_stream_says(
    clients: Clients, daemon: StartDaemon, stop: str | None, said: str
) -> None:
    body = anthropic_reply([{"type": "text", "text": "Hi."}], stop)  # type: ignore[arg-type]
    proxy, sims = await served(daemon, "anthropic", body)
    try:
        message = await clients.anthropic(proxy).messages.create(
            model="auto", max_tokens=64, messages=HELLO
        )  # type: ignore[arg-type]
    finally:
        await sims.__aexit__(None, None, None)
    assert message.stop_reason == said
    encoder = ANTHROPIC.stream_encoder("m", {}, 0)
    events = anthropic_reply_events(body)
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    (delta,) = [p for p in _sse_payloads(raw) if p["type"] == "message_delta"]
    assert delta["delta"]["stop_reason"] == said


async def test_a_chat_call_without_an_id_gets_the_one_its_stream_gets(
    clients: Clients, daemon: StartDaemon
) -> None:
    """A chat client got id "" (a Responses client call_id "") when not streaming."""
    call = {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    body = chat_reply({"content": None, "tool_calls": [call]}, "tool_calls")
    completion = await chat_answer(clients, daemon, body)
    (tool_call,) = completion.choices[0].message.tool_calls or []
    decoder = OpenAIStreamDecoder()
    chunk = {
        "id": "chatcmpl-quirk",
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}],
    }
    streamed = [e for e in decoder.feed(None, chunk) + list(decoder.close()) if hasattr(e, "id")]
    assert tool_call.id == "call_chatcmpl-quirk_0"
    assert [e.id for e in streamed if not isinstance(e, MessageStart)] == [tool_call.id]
    proxy, sims = await served(daemon, "openai", body)
    try:
        response = await clients.openai(proxy).responses.create(model="auto", input="hello")
    finally:
        await sims.__aexit__(None, None, None)
    (item,) = [i for i in response.output if i.type == "function_call"]
    assert item.call_id == "call_chatcmpl-quirk_0"


async def test_openrouter_s_error_finish_in_a_whole_reply_fails_over(
    clients: Clients, daemon: StartDaemon
) -> None:
    """Streamed, `finish_reason: "error"` is a fault that moves to the next target; whole, it
    was read as a normal end and the half answer reached the client."""
    body = chat_reply({"content": "Half an ans"}, "error")
    failing = SimulatedProvider(
        "openrouter", "openai", ["glm-5"], plan=FaultPlan.always(Status(200, body))
    )
    async with run_simulated([failing, SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        chain = {"default": "openrouter,glm-5|zai,glm-5"}
        proxy = await daemon(config_text(sims, chain))
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=HELLO
        )  # type: ignore[arg-type]
    attempts = raw.headers["x-llmproxy-attempts"]  # a server error is retried once first
    assert attempts.startswith("openrouter,glm-5=server_error;")
    assert attempts.endswith(";zai,glm-5=ok")
    assert raw.parse().choices[0].message.content == reply_text("zai", "glm-5", "hello")


async def test_reasoning_beside_a_null_reasoning_content_is_renamed(
    clients: Clients, daemon: StartDaemon
) -> None:
    body = chat_reply({"content": "Hi.", "reasoning": "R", "reasoning_content": None}, "stop")
    message = (await chat_answer(clients, daemon, body)).choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "R"


async def test_an_empty_usage_object_gets_the_estimate(
    clients: Clients, daemon: StartDaemon
) -> None:
    """`usage: {}` reports nothing: the answer's estimate, as without usage, not zeros."""
    body = chat_reply({"content": "A reply of some length."}, "stop") | {"usage": {}}
    completion = await chat_answer(clients, daemon, body)
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
