"""Whole (non-streaming) replies: read as the neutral events a stream of them would carry, and
rendered for the client by the accumulator.

Each provider format has one reader (`openai_reply_events`, `anthropic_reply_events`; codex only
streams, its stream is read by `stream_responses`), each client API one renderer (`RENDERERS`),
so the rules for stop reasons, usage and tool calls are the stream's own, and no reply goes
through a third format on its way. A same-format reply passes as it is where it already says
what its events would (`openai_reply_as_is`, `anthropic_reply_as_is`: a cheap look at the parsed
body), so fields llmproxy does not model survive; one that needs a rule applied goes through
the events like any other.

Decisions:
- Ids keep the upstream's, under the client API's prefix (`chatcmpl-`, `msg_`, `resp_`): see
  `reply_id`.
- A chat `refusal` is a refusal (`RefusalDelta`): chat and Responses clients get it as one,
  Anthropic clients as text.
- OpenAI-compatible reasoning (`reasoning_content`, or `reasoning` from OpenRouter/vLLM, or a
  `<think>` block opening `content`) becomes an Anthropic `thinking` block with
  `signature: ""`. The anthropic SDK accepts it (`signature: str`), Claude Code shows it as
  thinking, and it never reaches the visible text. Such unsigned blocks must not be sent to a
  real Anthropic upstream later: see `requests.drop_unsigned_thinking`.
- Anthropic `thinking` becomes `message.reasoning_content` (non-standard, what Z.ai/DeepSeek
  clients read); signatures and `redacted_thinking` reach Anthropic clients only; server-tool
  blocks reach none but an Anthropic client of a reply passed as it is.
- Text blocks of one Anthropic message are concatenated without separator, exactly as a client
  would see them streamed.
- A response that carries tool calls always ends with tool_use / tool_calls, whatever finish
  reason the provider gave (some OpenAI-compatible servers say "stop"): agent loops decide from it.
- Tool arguments that are not a JSON object are wrapped, see `common.RAW_ARGUMENTS_KEY`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from proxy.translate.accumulate import MessageAccumulator
from proxy.translate.common import dump_tool_input, split_think_tags
from proxy.translate.reasons import (
    anthropic_stop_to_stop,
    openai_finish,
    openai_finish_to_stop,
    stop_to_anthropic,
    stop_to_openai_finish,
    usage_from_anthropic,
    usage_from_openai,
    with_tool_calls,
)
from proxy.types import (
    ClientAPI,
    CustomToolCall,
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

__all__ = [
    "RENDERERS",
    "accumulated",
    "anthropic_reply_as_is",
    "anthropic_reply_events",
    "openai_reply_as_is",
    "openai_reply_events",
    "passthrough_response",
    "reply_id",
]

_ID_PREFIXES = ("chatcmpl-", "msg_", "resp_")


def passthrough_response(body: JSONObject, model: str) -> JSONObject:
    """Same format in and out: only `model` changes, to the served model's name."""
    return {**body, "model": model}


def openai_reply_as_is(body: JSONObject) -> Usage | None:
    """The usage of a chat.completion that a chat client may get as it is, or None when it must
    go through the events (`openai_reply_events`) to say what the same answer streamed says: a
    finish reason the stream would say otherwise (a call ending in "stop", Z.ai's "sensitive",
    none at all), `reasoning` rather than `reasoning_content`, a leading `<think>`, a list for
    `content`, a call without an id or with arguments that are not text, or no usage. Checked
    on the parsed body without copying it; several choices (a client's `n`) pass as they are,
    the events keep one."""
    usage = body.get("usage")
    choices = body.get("choices")
    if not isinstance(usage, dict) or not usage:  # no report: the stream's estimate
        return None
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return usage_from_openai(usage)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict) or "function_call" in message:  # legacy functions: as is
        return usage_from_openai(usage)
    content = message.get("content")
    if isinstance(content, list) or (
        isinstance(content, str) and content.lstrip().startswith("<think>")
    ):
        return None
    if message.get("reasoning") and not message.get("reasoning_content"):
        return None
    calls = message.get("tool_calls")
    finish = choice.get("finish_reason")
    if (calls and not isinstance(calls, list)) or not isinstance(finish, str):
        return None
    if stop_to_openai_finish(with_tool_calls(openai_finish_to_stop(finish), bool(calls))) != finish:
        return None
    for call in calls or ():
        if not isinstance(call, dict) or not _str(call.get("id")):
            return None
        function = call.get("function")
        if isinstance(function, dict) and not isinstance(function.get("arguments"), str):
            return None
    return usage_from_openai(usage)


def anthropic_reply_as_is(body: JSONObject) -> Usage | None:
    """The usage of an Anthropic `message` that a Messages client may get as it is (server-tool
    blocks and citations included), or None when it must go through the events: a stop reason
    the stream would say otherwise (none, one llmproxy does not know, `end_turn` after a
    `tool_use` block), or no usage."""
    usage = body.get("usage")
    stop = body.get("stop_reason")
    if not isinstance(usage, dict) or not usage or not isinstance(stop, str):
        return None
    content = body.get("content")
    calls = any(
        isinstance(block, dict) and block.get("type") == "tool_use"
        for block in (content if isinstance(content, list) else ())
    )
    if stop_to_anthropic(with_tool_calls(anthropic_stop_to_stop(stop), calls)) != stop:
        return None
    return usage_from_anthropic(usage)


def reply_id(prefix: str, upstream_id: Any) -> str:
    """The upstream's answer id under the client API's `prefix` (`chatcmpl-abc` -> `msg_abc`,
    `resp_abc` -> `chatcmpl-abc`); a fresh one when the provider sent none."""
    if not isinstance(upstream_id, str) or not upstream_id:
        return prefix + uuid.uuid4().hex
    base = upstream_id
    for known in _ID_PREFIXES:
        base = base.removeprefix(known)
    return prefix + base


Render = Callable[[MessageAccumulator, str, Mapping[str, Any], int | None], JSONObject]
"""(accumulated reply, the served model's name, the client's request, `created` or None for
now) -> the client's answer."""


def _render_openai(
    reply: MessageAccumulator, model: str, request: Mapping[str, Any], created: int | None
) -> JSONObject:
    completion_id = reply_id("chatcmpl-", reply.message_id)
    return reply.to_openai(model, completion_id=completion_id, created=created)


def _render_anthropic(
    reply: MessageAccumulator, model: str, request: Mapping[str, Any], created: int | None
) -> JSONObject:
    return reply.to_anthropic(model, message_id=reply_id("msg_", reply.message_id))


def _render_responses(
    reply: MessageAccumulator, model: str, request: Mapping[str, Any], created: int | None
) -> JSONObject:
    response_id = reply_id("resp_", reply.message_id)
    return reply.to_responses(model, request, response_id=response_id, created_at=created)


RENDERERS: Mapping[ClientAPI, Render] = {
    ClientAPI.OPENAI: _render_openai,
    ClientAPI.ANTHROPIC: _render_anthropic,
    ClientAPI.RESPONSES: _render_responses,
}


def accumulated(events: Iterable[StreamEvent], *, input_tokens: int = 0) -> MessageAccumulator:
    accumulator = MessageAccumulator(input_tokens_hint=input_tokens)
    accumulator.extend(events)
    return accumulator


# --- readers, one per provider format that answers in JSON --------------------------------------


def openai_reply_events(body: JSONObject) -> list[StreamEvent]:
    """A whole chat.completion as neutral events: reasoning, text, tool calls, finish, usage."""
    choices = body.get("choices")
    choice = _obj(choices[0]) if isinstance(choices, list) and choices else {}
    message = _obj(choice.get("message"))
    events: list[StreamEvent] = [MessageStart(_str(body.get("id")), _str(body.get("model")))]

    reasoning = _str(message.get("reasoning_content")) or _str(message.get("reasoning"))
    text = _openai_text(message.get("content"))
    if not reasoning:
        reasoning, text = split_think_tags(text)
    refusal = _str(message.get("refusal"))
    if reasoning:
        events.append(ReasoningDelta(reasoning))
    if text:
        events.append(TextDelta(text))
    if refusal:
        events.append(RefusalDelta(refusal))

    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append({"function": legacy})
    message_id = _str(body.get("id"))
    for index, call in enumerate(calls):
        # A call without an id gets the one its stream's decoder would make up.
        call_id = _str(call.get("id")) or f"call_{message_id}_{index}"
        if call.get("type") == "custom":  # a call to a custom tool: a raw string input
            custom = _obj(call.get("custom"))
            name, text = _str(custom.get("name")), _str(custom.get("input"))
            events.append(CustomToolCall(index, call_id, name, text))
            continue
        function = _obj(call.get("function"))
        events.append(ToolCallStart(index, call_id, _str(function.get("name"))))
        events.append(ToolCallDelta(index, _raw_arguments(function.get("arguments"))))

    events.append(openai_finish(choice))
    usage = body.get("usage")
    if isinstance(usage, dict) and usage:  # as a stream: no report, no UsageUpdate (estimated)
        events.append(UsageUpdate(usage_from_openai(usage)))
    return events


def _raw_arguments(arguments: Any) -> str:
    """`function.arguments` as the JSON text a stream would carry (a few servers send an
    object)."""
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, dict):
        return orjson.dumps(arguments).decode()
    return "" if arguments is None else str(arguments)


def _obj(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _openai_text(content: Any) -> str:
    """`content` is a string, but a few servers answer with a list of text parts."""
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return _str(content)


def anthropic_reply_events(body: JSONObject) -> list[StreamEvent]:
    """A whole Anthropic `message` as the events its stream would carry (`stream_anthropic`),
    blocks in order: signatures, redacted thinking and the stop sequence included. Server-tool
    blocks (web search results...) have no neutral event and are left out."""
    events: list[StreamEvent] = [MessageStart(_str(body.get("id")), _str(body.get("model")))]
    content = body.get("content")
    tools = 0
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            events.append(TextDelta(_str(block.get("text"))))
        elif kind == "thinking":
            events.append(ReasoningDelta(_str(block.get("thinking"))))
            if signature := _str(block.get("signature")):
                events.append(ReasoningSignature(signature))
        elif kind == "redacted_thinking":
            events.append(RedactedReasoning(_str(block.get("data"))))
        elif kind == "tool_use":
            events.append(ToolCallStart(tools, _str(block.get("id")), _str(block.get("name"))))
            events.append(ToolCallDelta(tools, dump_tool_input(block.get("input"))))
            tools += 1
    stop_sequence = _str(body.get("stop_sequence")) or None
    events.append(
        Finish(anthropic_stop_to_stop(_str(body.get("stop_reason")) or None), stop_sequence)
    )
    usage = body.get("usage")
    if isinstance(usage, dict) and usage:
        events.append(UsageUpdate(usage_from_anthropic(usage)))
    return events
