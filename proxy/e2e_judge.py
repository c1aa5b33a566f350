"""Judging an answer the way a strict client reads it: the bytes on the wire, not the daemon's
own (lenient) decoders.

The checks follow what the official SDKs enforce when they parse and accumulate an answer (the
openai SDK's `ChatCompletionChunk` stream and its accumulator, the anthropic SDK's
`MessageStream`), plus what a tool-using agent relies on: a chat stream is chunks of one id
ending with `[DONE]`, one `finish_reason`, and tool calls whose first fragment names them; an
Anthropic stream opens with `message_start`, opens, fills and closes blocks in index order with
deltas of the block's own kind, and ends with `message_delta` and `message_stop`. An error event
anywhere fails. A tool test passes only when the answer says it stopped for the tool
(`finish_reason: "tool_calls"`, `stop_reason: "tool_use"`): a `stop` after tool calls makes an
agent drop the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.sse import SSEDecoder, SSEEvent
from proxy.types import ClientAPI

OPENAI_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
ANTHROPIC_STOP = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
)
# Which delta kinds each Anthropic block kind may receive.
BLOCK_DELTAS = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "redacted_thinking": frozenset(),
    "tool_use": frozenset({"input_json_delta"}),
}
DELTA_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
ToolCheck = Callable[[str, Any], str | None]


class WireProblem(Exception):
    """What a strict client would reject."""


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


def wire_problem(
    client: ClientAPI, raw: bytes, *, stream: bool, tools: bool, tool_check: ToolCheck
) -> str | None:
    """Why a strict client of `client`'s API would reject (or an agent misread) the answer in
    `raw`, or None. `tool_check(name, arguments)` judges the first tool call of a tool test."""
    try:
        if client is ClientAPI.ANTHROPIC:
            check = _anthropic_stream if stream else _anthropic_message
        else:
            check = _openai_stream if stream else _openai_completion
        check(raw, tools, tool_check)
    except WireProblem as problem:
        return str(problem)
    return None


# --- OpenAI chat completions ----------------------------------------------------------------


def _openai_completion(raw: bytes, tools: bool, tool_check: ToolCheck) -> None:
    body = _object(raw, "the response body")
    _expect(body.get("object") == "chat.completion", "object is not 'chat.completion'")
    _expect(isinstance(body.get("id"), str), "the completion has no id")
    choices: Any = body.get("choices")
    _expect(isinstance(choices, list) and choices and isinstance(choices[0], dict), "no choices")
    choice = choices[0]
    message = choice.get("message")
    _expect(
        isinstance(message, dict) and message.get("role") == "assistant",
        "choices[0].message is not an assistant message",
    )
    finish = choice.get("finish_reason")
    _expect(finish in OPENAI_FINISH, f"finish_reason {finish!r} is not one the SDK knows")
    calls: list[_Call] = []
    for index, call in enumerate(message.get("tool_calls") or []):
        function: Any = call.get("function") if isinstance(call, dict) else None
        _expect(
            isinstance(function, dict)
            and isinstance(call.get("id"), str)
            and call.get("type") == "function"
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments"), str),
            f"tool_calls[{index}] is not a function call with id, name and arguments",
        )
        calls.append(_Call(call["id"], function["name"], [function["arguments"]]))
    _verdict(tools, finish == "tool_calls", finish, calls, message.get("content"), tool_check)


def _openai_stream(raw: bytes, tools: bool, tool_check: ToolCheck) -> None:
    events = _sse(raw)
    _expect(bool(events) and events[-1].data == "[DONE]", "the stream does not end with [DONE]")
    stream_id: str | None = None
    finish: str | None = None
    text: list[str] = []
    calls: dict[int, _Call] = {}
    for number, event in enumerate(events[:-1]):
        _expect(event.data != "[DONE]", "[DONE] before the end of the stream")
        chunk = _object(event.data.encode(), f"chunk {number}")
        if "error" in chunk:
            raise WireProblem(f"error chunk: {_error_text(chunk)}")
        _expect(
            chunk.get("object") == "chat.completion.chunk",
            f"chunk {number}: object is not 'chat.completion.chunk'",
        )
        stream_id = stream_id or chunk.get("id")
        _expect(chunk.get("id") == stream_id, f"chunk {number}: the id changed")
        choices: Any = chunk.get("choices")
        _expect(isinstance(choices, list), f"chunk {number}: no choices list")
        for choice in choices:
            _expect(
                isinstance(choice, dict) and isinstance(choice.get("delta"), dict),
                f"chunk {number}: a choice without a delta",
            )
            delta = choice["delta"]
            reason = choice.get("finish_reason")
            has_content = bool(delta.get("content") or delta.get("tool_calls"))
            _expect(
                finish is None or not has_content, f"chunk {number}: content after finish_reason"
            )
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for fragment in delta.get("tool_calls") or []:
                _tool_fragment(fragment, calls, number)
            if reason is not None:
                _expect(finish is None, f"chunk {number}: a second finish_reason")
                _expect(
                    reason in OPENAI_FINISH, f"finish_reason {reason!r} is not one the SDK knows"
                )
                finish = reason
    _expect(finish is not None, "the stream has no finish_reason")
    _verdict(tools, finish == "tool_calls", finish, list(calls.values()), "".join(text), tool_check)


def _tool_fragment(fragment: Any, calls: dict[int, _Call], number: int) -> None:
    _expect(
        isinstance(fragment, dict) and isinstance(fragment.get("index"), int),
        f"chunk {number}: a tool call fragment without an index",
    )
    function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
    index = fragment["index"]
    if index not in calls:
        # The SDK's accumulator takes id, type and name from a call's first fragment.
        _expect(
            isinstance(fragment.get("id"), str)
            and isinstance(function.get("name"), str)
            and fragment.get("type") == "function",
            f"chunk {number}: tool call {index} starts without id, type and name",
        )
        calls[index] = _Call(fragment["id"], function["name"])
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        calls[index].arguments.append(arguments)


# --- Anthropic messages ---------------------------------------------------------------------


def _anthropic_message(raw: bytes, tools: bool, tool_check: ToolCheck) -> None:
    body = _object(raw, "the response body")
    _expect(
        body.get("type") == "message" and body.get("role") == "assistant",
        "not an assistant message",
    )
    stop = body.get("stop_reason")
    _expect(stop in ANTHROPIC_STOP, f"stop_reason {stop!r} is not one the SDK knows")
    content: Any = body.get("content")
    _expect(isinstance(content, list), "content is not a list of blocks")
    calls, text = [], []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        _expect(
            kind in BLOCK_DELTAS or kind == "server_tool_use",
            f"content[{index}] has an unknown type {kind!r}",
        )
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            _expect(
                isinstance(block.get("id"), str)
                and isinstance(block.get("name"), str)
                and isinstance(block.get("input"), dict),
                f"content[{index}] is a tool_use block without id, name and input",
            )
            calls.append(_Call(block["id"], block["name"], [orjson.dumps(block["input"]).decode()]))
    _verdict(tools, stop == "tool_use", stop, calls, "".join(text), tool_check)


def _anthropic_stream(raw: bytes, tools: bool, tool_check: ToolCheck) -> None:
    events = [e for e in _sse(raw) if (e.event or "") != "ping"]
    _expect(bool(events), "the stream is empty")
    payloads = []
    for number, event in enumerate(events):
        payload = _object(event.data.encode(), f"event {number}")
        kind = payload.get("type")
        if kind == "error" or event.event == "error":
            raise WireProblem(f"error event: {_error_text(payload)}")
        _expect(event.event == kind, f"event {number}: `event: {event.event}` carries {kind!r}")
        payloads.append(payload)
    _expect(payloads[0]["type"] == "message_start", "the stream does not open with message_start")
    _expect(payloads[-1]["type"] == "message_stop", "the stream does not end with message_stop")
    blocks: list[dict[str, Any]] = []
    open_block: int | None = None
    stop: Any = None
    for number, payload in enumerate(payloads[1:-1], start=1):
        kind = payload["type"]
        index: Any = payload.get("index")
        if kind == "content_block_start":
            _expect(open_block is None, f"event {number}: a block opened inside another")
            _expect(index == len(blocks), f"event {number}: block index {index} out of order")
            started: Any = payload.get("content_block")
            _expect(
                isinstance(started, dict) and started.get("type") in BLOCK_DELTAS,
                f"event {number}: a block of unknown type",
            )
            blocks.append({**started, "parts": []})
            open_block = index
        elif kind == "content_block_delta":
            _expect(
                index == open_block and open_block is not None,
                f"event {number}: a delta for block {index}, which is not open",
            )
            delta: Any = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
            block = blocks[index]
            _expect(
                delta.get("type") in BLOCK_DELTAS[block["type"]],
                f"event {number}: a {delta.get('type')} in a {block['type']} block",
            )
            field_name = DELTA_FIELDS.get(delta["type"])
            if field_name is not None:
                block["parts"].append(str(delta.get(field_name) or ""))
        elif kind == "content_block_stop":
            _expect(index == open_block, f"event {number}: closes block {index}, not open")
            open_block = None
        elif kind == "message_delta":
            _expect(open_block is None, f"event {number}: message_delta inside a block")
            ending: Any = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
            stop = ending.get("stop_reason")
        else:
            raise WireProblem(f"event {number}: unexpected {kind!r}")
    _expect(stop in ANTHROPIC_STOP, f"stop_reason {stop!r} is not one the SDK knows")
    calls = [
        _Call(str(b.get("id")), str(b.get("name")), b["parts"])
        for b in blocks
        if b["type"] == "tool_use"
    ]
    text = "".join("".join(b["parts"]) for b in blocks if b["type"] == "text")
    _verdict(tools, stop == "tool_use", stop, calls, text, tool_check)


# --- shared ---------------------------------------------------------------------------------


def _verdict(
    tools: bool,
    stopped_for_tools: bool,
    stop: Any,
    calls: list[_Call],
    text: Any,
    tool_check: ToolCheck,
) -> None:
    if not tools:
        _expect(isinstance(text, str) and bool(text.strip()), f"empty answer (stop: {stop})")
        return
    _expect(bool(calls), "no tool call came back")
    _expect(
        stopped_for_tools,
        f"a tool call came back with stop reason {stop!r}, which tells "
        "the client there is no call to run",
    )
    call = calls[0]
    _expect(bool(call.id), "the tool call has no id")
    problem = tool_check(call.name, "".join(call.arguments))
    _expect(problem is None, problem or "")


def _sse(raw: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.close()


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireProblem(f"{what} is not JSON") from exc
    _expect(isinstance(value, dict), f"{what} is not a JSON object")
    return value  # type: ignore[no-any-return]


def _error_text(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    return str(error.get("message") if isinstance(error, dict) else error)[:200]


def _expect(condition: object, problem: str) -> None:
    if not condition:
        raise WireProblem(problem)
