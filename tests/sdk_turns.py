"""One conversational turn through the official SDKs, seen the same way from either client.

`openai_turn` / `anthropic_turn` send the conversation so far and return a `Turn`: the visible
text, the reasoning (from the raw JSON for OpenAI clients, whose SDK models keep unknown keys as
extras; from `thinking` blocks for Anthropic clients), the tool calls with parsed arguments, the
stop reason, usage, and the assistant message to append to the history in the client's format.
Streaming uses the SDKs' own accumulators (`chat.completions.stream`,
`messages.stream(...).get_final_message()`), which check chunk consistency as they go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import orjson


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    text: str
    reasoning: str
    calls: tuple[Call, ...]
    stop: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str
    assistant: dict[str, Any]  # the reply as a history message, in the client's format
    raw: Any = None  # the non-streaming JSON body, or the SDK's final object when streaming


def _parse_arguments(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    assert isinstance(value, dict), f"tool arguments are not a JSON object: {text!r}"
    return value


async def openai_turn(
    client: openai.AsyncOpenAI,
    messages: Sequence[dict[str, Any]],
    *,
    stream: bool,
    model: str = "auto",
    **params: Any,
) -> Turn:
    kwargs: dict[str, Any] = {"model": model, "messages": list(messages), **params}
    if stream:
        reasoning: list[str] = []
        async with client.chat.completions.stream(
            **kwargs, stream_options={"include_usage": True}
        ) as events:
            async for event in events:
                if event.type != "chunk":
                    continue
                for choice in event.chunk.choices:
                    extra = choice.delta.model_extra or {}
                    reasoning.append(extra.get("reasoning_content") or "")
            completion: Any = events.current_completion_snapshot
            if completion.choices[0].finish_reason not in ("length", "content_filter"):
                # The helper refuses to "parse" a cut-off or filtered answer; its snapshot is
                # the same data.
                completion = await events.get_final_completion()
        thought = "".join(reasoning)
        raw: Any = completion
    else:
        response = await client.chat.completions.with_raw_response.create(**kwargs)
        completion = response.parse()
        raw = orjson.loads(response.content)
        thought = raw["choices"][0]["message"].get("reasoning_content") or ""
    choice = completion.choices[0]
    message = choice.message
    calls = tuple(
        Call(c.id, c.function.name, _parse_arguments(c.function.arguments))
        for c in message.tool_calls or []
    )
    assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        assistant["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in message.tool_calls
        ]
    usage = completion.usage
    return Turn(
        text=message.content or "",
        reasoning=thought,
        calls=calls,
        stop=choice.finish_reason,
        input_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else None,
        model=completion.model,
        assistant=assistant,
        raw=raw,
    )


def openai_tool_results(results: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": call_id, "content": text} for call_id, text in results]


async def anthropic_turn(
    client: anthropic.AsyncAnthropic,
    messages: Sequence[dict[str, Any]],
    *,
    stream: bool,
    model: str = "claude-opus-4-8",
    max_tokens: int = 1024,
    **params: Any,
) -> Turn:
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": list(messages),
        "max_tokens": max_tokens,
        **params,
    }
    raw: Any
    if stream:
        async with client.messages.stream(**kwargs) as events:
            message: Any = await events.get_final_message()
        raw = message
    else:
        response = await client.messages.with_raw_response.create(**kwargs)
        message = await response.parse()
        raw = orjson.loads(await response.read())
    text = "".join(b.text for b in message.content if b.type == "text")
    thought = "".join(b.thinking for b in message.content if b.type == "thinking")
    calls = tuple(
        Call(b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"
    )
    return Turn(
        text=text,
        reasoning=thought,
        calls=calls,
        stop=message.stop_reason,
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
        model=message.model,
        # Exactly what came over the wire, as a client that keeps its history would send it.
        assistant={"role": "assistant", "content": [b.to_dict() for b in message.content]},
        raw=raw,
    )


def anthropic_tool_results(results: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    blocks = [
        {"type": "tool_result", "tool_use_id": call_id, "content": text}
        for call_id, text in results
    ]
    return [{"role": "user", "content": blocks}]
