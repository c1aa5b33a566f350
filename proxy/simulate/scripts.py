"""Scripts: what a simulated model answers, as a pure function of the request (deterministic).

The rules, so tests can predict every byte of content:

- The head is `[{provider}/{model}]`; `clip(s)` collapses whitespace and keeps the first
  `ECHO_CHARS` characters.
- The last message is a tool result -> text `"{head} Tool {name} returned: {clip(result)}"`.
- Tools are offered, the last message is from the user and `tool_choice` is not none -> one call
  (or `parallel_tool_calls` calls) to the first tool(s), or to the forced one; the arguments fill
  the schema's *required* properties by type (see `example_arguments`). With
  `text_before_tool` the call is preceded by the text `"{head} Calling {name}."`.
- The last user text starts with `REFUSE_TRIGGER` -> a refusal, `"{head} I can't help with
  that."`: OpenAI-format providers send it as `refusal` (content null, finish reason stop), codex
  as a `refusal` part, Anthropic as text with stop reason `refusal`.
- Otherwise -> text `"{head} You said: {clip(last user text)}"`; the user text is the last text
  part of the last user message (Claude Code puts reminders first and the prompt last).
- The last message is an assistant prefill -> the reply is computed from the conversation
  before it, and only the part after the prefill is returned when the reply starts with it
  (otherwise the whole reply text is returned).
- Reasoning models (and requests that do not disable thinking, and no prefill) first think
  `"{head} Thinking about: {clip(last user text or tool result)}"`.
- Text, reasoning and tool arguments are cut into `chunk_chars`-character chunks; one chunk is one
  output token, and `max_tokens` keeps only that many chunks (finish reason: max tokens).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from proxy.frozen import frozen
from proxy.simulate.wire import digest
from proxy.types import JSONObject, ProviderFormat, StopReason

ECHO_CHARS = 60
DEFAULT_CHUNK_CHARS = 8
REFUSE_TRIGGER = "Refuse:"

Choice = Literal["auto", "none", "required"]


@frozen
class SimToolCall:
    id: str
    name: str
    arguments: str
    fragments: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return "".join(self.fragments) == self.arguments


@frozen
class Reply:
    """What the simulated model says; each tuple element is one streamed chunk (one token)."""

    id: str
    model: str
    reasoning: tuple[str, ...]
    text: tuple[str, ...]
    tool_calls: tuple[SimToolCall, ...]
    stop: StopReason
    input_tokens: int
    signature: str = ""
    refusal: bool = False
    """`text` is the model declining to answer."""

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.text) + sum(len(c.fragments) for c in self.tool_calls)


@frozen
class Conversation:
    """The few facts about a request that decide the reply, in either wire format."""

    model: str
    user_text: str
    tool_result: tuple[str, str] | None  # (tool name, result text)
    prefill: str | None
    tools: tuple[tuple[str, JSONObject], ...]  # (name, JSON schema)
    choice: Choice
    forced_tool: str | None
    max_tokens: int | None
    thinking_disabled: bool


def clip(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:ECHO_CHARS]


def chunk(text: str, size: int) -> tuple[str, ...]:
    size = max(1, size)
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def reply_text(provider: str, model: str, user_text: str) -> str:
    """The plain reply to a user message (no tools, no prefill)."""
    return f"[{provider}/{model}] You said: {clip(user_text)}"


def refusal_text(provider: str, model: str) -> str:
    return f"[{provider}/{model}] I can't help with that."


def tool_result_text(provider: str, model: str, tool: str, result: str) -> str:
    return f"[{provider}/{model}] Tool {tool} returned: {clip(result)}"


def reasoning_text(provider: str, model: str, about: str) -> str:
    return f"[{provider}/{model}] Thinking about: {clip(about)}"


def thinking_signature(provider: str, thinking: str) -> str:
    """The signature a simulated Anthropic provider puts on, and demands back for, a thinking
    block: scoped to the provider, so a block signed by one is rejected by another."""
    return "simsig_" + digest("signature", provider, thinking)[:40]


def estimate_input_tokens(body: JSONObject) -> int:
    counted = {k: body.get(k) for k in ("system", "messages", "tools")}
    return max(1, len(orjson.dumps(counted)) // 4)


# --- Reading the request ------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Concatenated text of a string or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text")
        )
    return ""


def _last_text_part(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text")
        ]
        return texts[-1] if texts else ""
    return ""


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _last_text_part(message.get("content"))
            if text:
                return text
    return ""


def _max_tokens(body: JSONObject, *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _thinking_disabled(body: JSONObject) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "disabled"


def read_openai(body: JSONObject) -> Conversation:
    messages: list[Any] = list(body.get("messages") or [])
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    prefill = _text_of(last.get("content")) if last.get("role") == "assistant" else None
    history = messages[:-1] if prefill is not None else messages
    tool_result = None
    if last.get("role") == "tool":
        names = {
            call.get("id"): call.get("function", {}).get("name", "tool")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "assistant"
            for call in (m.get("tool_calls") or [])
            if isinstance(call, dict)
        }
        name = str(names.get(last.get("tool_call_id"), "tool"))
        tool_result = (name, _text_of(last.get("content")))
    tools = tuple(
        (str(t["function"]["name"]), dict(t["function"].get("parameters") or {}))
        for t in (body.get("tools") or [])
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    )
    choice: Choice = "auto"
    forced = None
    raw = body.get("tool_choice")
    if raw == "none":
        choice = "none"
    elif raw == "required":
        choice = "required"
    elif isinstance(raw, dict) and isinstance(raw.get("function"), dict):
        choice, forced = "required", str(raw["function"].get("name"))
    return Conversation(
        model=str(body.get("model", "")),
        user_text=_last_user_text(history),
        tool_result=tool_result,
        prefill=prefill,
        tools=tools,
        choice=choice,
        forced_tool=forced,
        max_tokens=_max_tokens(body, "max_completion_tokens", "max_tokens"),
        thinking_disabled=_thinking_disabled(body),
    )


def read_anthropic(body: JSONObject) -> Conversation:
    messages: list[Any] = list(body.get("messages") or [])
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    prefill = _text_of(last.get("content")) if last.get("role") == "assistant" else None
    history = messages[:-1] if prefill is not None else messages
    tool_result = None
    content = last.get("content")
    if last.get("role") == "user" and isinstance(content, list):
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            names = {
                b.get("id"): b.get("name", "tool")
                for m in messages
                if isinstance(m, dict) and isinstance(m.get("content"), list)
                for b in m["content"]
                if isinstance(b, dict) and b.get("type") == "tool_use"
            }
            first = results[0]
            tool_result = (
                str(names.get(first.get("tool_use_id"), "tool")),
                _text_of(first.get("content")),
            )
    tools = tuple(
        (str(t["name"]), dict(t.get("input_schema") or {}))
        for t in (body.get("tools") or [])
        if isinstance(t, dict) and "name" in t and t.get("type") in (None, "custom")
    )
    choice: Choice = "auto"
    forced = None
    raw = body.get("tool_choice")
    if isinstance(raw, dict):
        if raw.get("type") == "none":
            choice = "none"
        elif raw.get("type") == "any":
            choice = "required"
        elif raw.get("type") == "tool":
            choice, forced = "required", str(raw.get("name"))
    return Conversation(
        model=str(body.get("model", "")),
        user_text=_last_user_text(history),
        tool_result=tool_result,
        prefill=prefill,
        tools=tools,
        choice=choice,
        forced_tool=forced,
        max_tokens=_max_tokens(body, "max_tokens"),
        thinking_disabled=_thinking_disabled(body),
    )


def read_conversation(body: JSONObject, fmt: ProviderFormat) -> Conversation:
    return read_anthropic(body) if fmt is ProviderFormat.ANTHROPIC else read_openai(body)


# --- Tool arguments ----------------------------------------------------------------------------


def example_value(name: str, schema: Any) -> Any:
    """A plausible value for a JSON schema: enums take their first value, strings are
    `"example <name>"`, integers 1, numbers 1.5, booleans true, arrays one item, objects their
    required properties."""
    if not isinstance(schema, dict):
        return f"example {name}"
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_value(name, schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return [example_value(name, schema.get("items", {}))]
    if kind == "object" or "properties" in schema:
        return example_arguments(schema)
    return f"example {name}"


def example_arguments(schema: JSONObject) -> JSONObject:
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    return {
        str(key): example_value(str(key), properties.get(key, {}))
        for key in required
        if isinstance(key, str)
    }


# --- The reply ---------------------------------------------------------------------------------


def _wants_tools(conv: Conversation) -> bool:
    return (
        bool(conv.tools)
        and conv.choice != "none"
        and conv.prefill is None
        and conv.tool_result is None
    )


def plan_reply(
    body: JSONObject,
    fmt: ProviderFormat,
    *,
    provider: str,
    reasoning: bool = False,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    text_before_tool: bool = False,
    parallel_tool_calls: int = 1,
    extra_text: str = "",
) -> Reply:
    conv = read_conversation(body, fmt)
    head = f"[{provider}/{conv.model}]"
    # Streaming or not is delivery, not content: the same question gets the same ids either way.
    content = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    key = digest(provider, fmt.value, content)
    calls: list[tuple[str, str]] = []
    refusal = conv.tool_result is None and conv.user_text.startswith(REFUSE_TRIGGER)
    if refusal:
        text = refusal_text(provider, conv.model)
    elif conv.tool_result is not None:
        text = tool_result_text(provider, conv.model, *conv.tool_result)
    elif _wants_tools(conv):
        chosen = [t for t in conv.tools if t[0] == conv.forced_tool] or list(conv.tools)
        chosen = chosen[: max(1, parallel_tool_calls)]
        for name, schema in chosen:
            calls.append((name, orjson.dumps(example_arguments(schema)).decode()))
        text = f"{head} Calling {chosen[0][0]}." if text_before_tool else ""
    else:
        text = reply_text(provider, conv.model, conv.user_text) + extra_text
    if conv.prefill is not None and text.startswith(conv.prefill):
        text = text[len(conv.prefill) :]

    thought = ""
    if reasoning and not conv.thinking_disabled and conv.prefill is None:
        about = conv.tool_result[1] if conv.tool_result else conv.user_text
        thought = reasoning_text(provider, conv.model, about)

    budget = conv.max_tokens if conv.max_tokens is not None else 1 << 30
    pieces_reasoning = chunk(thought, chunk_chars)[:budget]
    budget -= len(pieces_reasoning)
    pieces_text = chunk(text, chunk_chars)[: max(0, budget)]
    budget -= len(pieces_text)
    tool_calls: list[SimToolCall] = []
    prefix = "toolu_" if fmt is ProviderFormat.ANTHROPIC else "call_"
    for index, (name, arguments) in enumerate(calls):
        if budget <= 0:
            break
        fragments = chunk(arguments, chunk_chars)[:budget]
        budget -= len(fragments)
        call_id = prefix + digest(key, "call", index)[:24]
        tool_calls.append(SimToolCall(call_id, name, arguments, fragments))
    truncated = (
        len(pieces_reasoning) < len(chunk(thought, chunk_chars))
        or len(pieces_text) < len(chunk(text, chunk_chars))
        or len(tool_calls) < len(calls)
        or any(not c.complete for c in tool_calls)
    )
    if truncated:
        stop = StopReason.MAX_TOKENS
    elif tool_calls:
        stop = StopReason.TOOL_USE
    elif refusal and fmt is ProviderFormat.ANTHROPIC:
        stop = StopReason.CONTENT_FILTER  # Anthropic's `refusal`
    else:
        stop = StopReason.END_TURN
    id_prefix = "msg_" if fmt is ProviderFormat.ANTHROPIC else "chatcmpl-"
    return Reply(
        id=id_prefix + key[:24],
        model=conv.model,
        reasoning=pieces_reasoning,
        text=pieces_text,
        tool_calls=tuple(tool_calls),
        stop=stop,
        input_tokens=estimate_input_tokens(body),
        signature=thinking_signature(provider, "".join(pieces_reasoning)) if thought else "",
        refusal=refusal,
    )
