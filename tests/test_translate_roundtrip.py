"""Round trips through the other dialect keep conversations intact (hypothesis).

OpenAI -> Anthropic -> OpenAI and Anthropic -> OpenAI -> Anthropic must keep every message's role
and text, every tool call's id, name and arguments (as parsed JSON) and every tool result. What is
allowed to change is spelled out in the normalisers: text blocks of one message join into one
string, and an Anthropic `is_error` survives only as a prefix of the result text.
"""

from __future__ import annotations

import string
from typing import Any

import orjson
import pydantic
from anthropic.types import message_create_params as anthropic_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import completion_create_params as openai_params

from proxy.translate.common import TEXT_SEPARATOR, TOOL_ERROR_PREFIX
from proxy.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request

OPENAI_REQUEST = pydantic.TypeAdapter(openai_params.CompletionCreateParams)
ANTHROPIC_REQUEST = pydantic.TypeAdapter(anthropic_params.MessageCreateParams)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(min_size=1, max_size=30).filter(lambda s: bool(s.strip()))
id_suffixes = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=10)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,12}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def drain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drain(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [drain(v) for v in value]


# --- OpenAI -> Anthropic -> OpenAI -------------------------------------------------------------


@st.composite
def openai_conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    messages.append({"role": "user", "content": draw(texts)})
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            call_id = "call_" + draw(id_suffixes.filter(lambda s: "call_" + s not in used))
            used.add(call_id)
            args = orjson.dumps(draw(arguments)).decode()
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": draw(names), "arguments": args},
                }
            )
        content = draw(texts) if not calls or draw(st.booleans()) else None
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages.extend(
            {"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls
        )
        if not calls or draw(st.booleans()):
            messages.append({"role": "user", "content": draw(texts)})
    return {"model": "client", "messages": messages}


def normalise_openai(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in messages:
        calls = tuple(
            (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in m.get("tool_calls", [])
        )
        out.append((m["role"], m.get("content"), m.get("tool_call_id"), calls))
    return out


@SETTINGS
@given(openai_conversations())
def test_openai_conversation_survives_a_trip_through_anthropic(body: dict[str, Any]) -> None:
    anthropic_body = openai_to_anthropic_request(body, "upstream")
    drain(ANTHROPIC_REQUEST.validate_python(anthropic_body))
    back = anthropic_to_openai_request(anthropic_body, "client")
    drain(OPENAI_REQUEST.validate_python(back))
    assert normalise_openai(back["messages"]) == normalise_openai(body["messages"])


# --- Anthropic -> OpenAI -> Anthropic ----------------------------------------------------------


def text_blocks(draw: st.DrawFn, low: int) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t} for t in draw(st.lists(texts, min_size=low, max_size=3))]


@st.composite
def anthropic_conversations(draw: st.DrawFn) -> dict[str, Any]:
    first = draw(texts) if draw(st.booleans()) else text_blocks(draw, 1)
    messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            blocks.append({"type": "thinking", "thinking": draw(texts), "signature": "sig"})
        blocks += text_blocks(draw, 0)
        for _ in range(draw(st.integers(0 if blocks else 1, 3))):
            tool_id = "toolu_" + draw(id_suffixes.filter(lambda s: "toolu_" + s not in used))
            used.add(tool_id)
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": draw(names), "input": draw(arguments)}
            )
        if not any(b["type"] in ("text", "tool_use") for b in blocks):
            blocks.append({"type": "text", "text": draw(texts)})
        messages.append({"role": "assistant", "content": blocks})
        results = [
            {
                "type": "tool_result",
                "tool_use_id": b["id"],
                "content": draw(texts),
                "is_error": draw(st.booleans()),
            }
            for b in blocks
            if b["type"] == "tool_use"
        ]
        after = text_blocks(draw, 0 if results else 1)
        messages.append({"role": "user", "content": results + after})
    body: dict[str, Any] = {"model": "client", "max_tokens": 1024, "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(texts)
    return body


def normalise_anthropic(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in messages:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        text = TEXT_SEPARATOR.join(b["text"] for b in blocks if b["type"] == "text")
        uses = tuple((b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use")
        results = tuple(
            (b["tool_use_id"], (TOOL_ERROR_PREFIX if b.get("is_error") else "") + b["content"])
            for b in blocks
            if b["type"] == "tool_result"
        )
        out.append((m["role"], text, uses, results))
    return out


@SETTINGS
@given(anthropic_conversations())
def test_anthropic_conversation_survives_a_trip_through_openai(body: dict[str, Any]) -> None:
    openai_body = anthropic_to_openai_request(body, "upstream")
    drain(OPENAI_REQUEST.validate_python(openai_body))
    back = openai_to_anthropic_request(openai_body, "client")
    drain(ANTHROPIC_REQUEST.validate_python(back))
    assert back.get("system") == body.get("system")
    assert normalise_anthropic(back["messages"]) == normalise_anthropic(body["messages"])
    # Thinking reaches the OpenAI side, but unsigned reasoning never comes back.
    assert all(
        b["type"] != "thinking"
        for m in back["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )
