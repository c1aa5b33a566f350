"""Neutral stream events -> one complete message, in any client API's shape.

The renderer of every non-streaming answer that is not a same-format pass-through: whole
upstream replies read as events (`replies`), providers that only stream (codex), and the CLI,
which needs to know what was already produced. The `chat.completion` envelope is built here
only; the Responses object's pieces come from `responses_response`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.frozen import frozen
from proxy.translate.common import anthropic_tool_id, fallback_tool_id, parse_tool_arguments
from proxy.translate.reasons import (
    final_finish,
    reported_or_estimated,
    stop_to_anthropic,
    stop_to_openai_finish,
    usage_to_anthropic,
    usage_to_openai,
)
from proxy.translate.responses_response import (
    message_item,
    reasoning_item,
    refusal_item,
    response_object,
    status_for,
)
from proxy.translate.responses_tools import ToolIndex, call_item, custom_arguments
from proxy.types import (
    CustomToolCall,
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)


def chat_completion(
    completion_id: str,
    created: int,
    model: str,
    message: JSONObject,
    stop: StopReason,
    usage: Usage,
) -> JSONObject:
    """A `chat.completion` with one choice: the envelope every non-streaming OpenAI answer is
    built in, in one place."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": stop_to_openai_finish(stop),
            }
        ],
        "usage": usage_to_openai(usage),
    }


@frozen
class ToolCallSnapshot:
    index: int
    id: str
    name: str
    arguments: str  # the raw JSON text received so far


@frozen
class PartialMessage:
    """What a stream has produced so far.

    `text` and `reasoning` are the exact concatenation of their deltas. A tool call is complete
    once any other content event (or Finish) follows it; the last call, still receiving
    arguments, is `open_tool_call`.
    """

    id: str
    model: str
    reasoning: str
    text: str
    tool_calls: tuple[ToolCallSnapshot, ...]
    open_tool_call: ToolCallSnapshot | None
    usage: Usage
    finish: Finish | None

    @property
    def finished(self) -> bool:
        return self.finish is not None


@dataclass(slots=True)
class _Block:
    kind: str  # "text", "refusal", "thinking", "redacted" or "tool"
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    tool: int = -1


@dataclass(slots=True)
class _Tool:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)  # function form, custom calls too
    custom: bool = False


class MessageAccumulator:
    """Consumes neutral events; renders a chat.completion, an Anthropic message or a Responses
    object.

    Blocks follow the same rule as the stream encoders: a new block whenever the event kind
    changes, a new tool call starts, or reasoning resumes after a signature. The first
    MessageStart and the first Finish count; usage is the latest UsageUpdate, or (when the
    upstream never reported any) an output estimate of 4 characters per token.
    """

    def __init__(self, *, input_tokens_hint: int = 0) -> None:
        self._input_hint = input_tokens_hint
        self._id = ""
        self._model = ""
        self._blocks: list[_Block] = []
        self._tools: dict[int, _Tool] = {}
        self._open_tool: int | None = None
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._output_chars = 0

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._content(event.text, "refusal" if isinstance(event, RefusalDelta) else "text")
        elif isinstance(event, ToolCallDelta):
            tool = self._tools.get(event.index)
            if tool is None:  # arguments before their start: keep them, name unknown
                tool = self._tools[event.index] = _Tool("", "")
                self._blocks.append(_Block("tool", tool=event.index))
            tool.arguments.append(event.arguments)
            self._output_chars += len(event.arguments)
        elif isinstance(event, ReasoningDelta):
            self._content(event.text, "thinking")
        elif isinstance(event, ToolCallStart):
            self._open_tool = event.index
            early = self._tools.get(event.index)
            if early is not None and not early.id and not early.name:
                early.id, early.name = event.id, event.name
            else:
                self._tools[event.index] = _Tool(event.id, event.name)
                self._blocks.append(_Block("tool", tool=event.index))
        elif isinstance(event, CustomToolCall):
            self._open_tool = None
            arguments = [custom_arguments(event.input)]
            self._output_chars += len(arguments[0])
            self._tools[event.index] = _Tool(event.id, event.name, arguments, custom=True)
            self._blocks.append(_Block("tool", tool=event.index))
        elif isinstance(event, ReasoningSignature):
            self._open_tool = None
            last = self._blocks[-1] if self._blocks else None
            if last is None or last.kind != "thinking" or last.signature:
                last = _Block("thinking")
                self._blocks.append(last)
            last.signature = event.signature
        elif isinstance(event, RedactedReasoning):
            self._open_tool = None
            self._blocks.append(_Block("redacted", [event.data]))
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._open_tool = None
            if self._finish is None:
                self._finish = event
        elif isinstance(event, MessageStart) and not self._id and not self._model:
            self._id, self._model = event.id, event.model

    def extend(self, events: Iterable[StreamEvent]) -> None:
        for event in events:
            self.add(event)

    # --- what failover needs -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finish is not None

    @property
    def message_id(self) -> str:
        """The id the upstream gave its answer ("" when it gave none)."""
        return self._id

    @property
    def text_so_far(self) -> str:
        """What the model said, refusals included."""
        return self._joined("text", "refusal")

    @property
    def reasoning_so_far(self) -> str:
        return self._joined("thinking")

    @property
    def tool_calls_complete(self) -> tuple[ToolCallSnapshot, ...]:
        return tuple(self._snapshot(i) for i in sorted(self._tools) if i != self._open_tool)

    @property
    def open_tool_call(self) -> ToolCallSnapshot | None:
        return None if self._open_tool is None else self._snapshot(self._open_tool)

    @property
    def usage(self) -> Usage:
        return reported_or_estimated(self._usage, self._input_hint, self._output_chars)

    def snapshot(self) -> PartialMessage:
        return PartialMessage(
            id=self._id,
            model=self._model,
            reasoning=self.reasoning_so_far,
            text=self.text_so_far,
            tool_calls=self.tool_calls_complete,
            open_tool_call=self.open_tool_call,
            usage=self.usage,
            finish=self._finish,
        )

    # --- rendering ---------------------------------------------------------------------------

    def to_openai(
        self, model: str, *, completion_id: str | None = None, created: int | None = None
    ) -> JSONObject:
        """A `chat.completion`. Text and reasoning are the exact concatenation of their deltas,
        as a client reading the stream sees them; reasoning goes to the `reasoning_content`
        extension field; `content` is null when there is no text; `created` defaults to now."""
        text = self._joined("text")
        reasoning = self.reasoning_so_far
        refusal = self._joined("refusal") or None
        message: JSONObject = {"role": "assistant", "content": text or None, "refusal": refusal}
        if reasoning:
            message["reasoning_content"] = reasoning
        if self._tools:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    # A client json-parses the arguments; a parameterless call sends "".
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in (self._snapshot(i) for i in sorted(self._tools))
            ]
        return chat_completion(
            completion_id or self._openai_id(),
            int(time.time()) if created is None else created,
            model,
            message,
            self._stop_reason(),
            self.usage,
        )

    def to_anthropic(self, model: str, *, message_id: str | None = None) -> JSONObject:
        """An Anthropic `message`, blocks in stream order. Tool ids are made Anthropic-safe and
        arguments parsed with `common.parse_tool_arguments` (broken JSON is wrapped, not lost)."""
        msg_id = message_id or self._id or "msg_llmproxy"
        content: list[JSONObject] = []
        for block in self._blocks:
            if block.kind in ("text", "refusal"):  # Anthropic shows a refusal as text
                text = "".join(block.parts)
                if text:
                    content.append({"type": "text", "text": text})
            elif block.kind == "thinking":
                thinking = "".join(block.parts)
                content.append(
                    {"type": "thinking", "thinking": thinking, "signature": block.signature}
                )
            elif block.kind == "redacted":
                content.append({"type": "redacted_thinking", "data": "".join(block.parts)})
            else:
                call = self._snapshot(block.tool)
                content.append(
                    {
                        "type": "tool_use",
                        "id": anthropic_tool_id(call.id, fallback_tool_id(msg_id, call.index)),
                        "name": call.name,
                        "input": parse_tool_arguments(call.arguments),
                    }
                )
        finish = final_finish(self._finish, bool(self._tools))
        return {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_to_anthropic(finish.reason),
            "stop_sequence": finish.stop_sequence,
            "usage": usage_to_anthropic(self.usage),
        }

    def to_responses(
        self,
        model: str,
        request: Mapping[str, Any],
        *,
        response_id: str,
        created_at: int | None = None,
    ) -> JSONObject:
        """A Responses `response`, items in stream order and named as the stream encoder names
        them. Calls are restored to what `request` declared (namespaced, custom:
        `responses_tools.ToolIndex`), and the request's settings are echoed, as the API does.
        Redacted reasoning has no Responses form and is left out."""
        tools = ToolIndex.of(request)
        base = response_id.removeprefix("resp_")
        output: list[JSONObject] = []
        for block in self._blocks:
            position = len(output)
            text = "".join(block.parts)
            if block.kind == "text" and text:
                output.append(message_item(f"msg_{base}_{position}", text))
            elif block.kind == "refusal" and text:
                output.append(refusal_item(f"msg_{base}_{position}", text))
            elif block.kind == "thinking" and text:
                output.append(reasoning_item(f"rs_{base}_{position}", text))
            elif block.kind == "tool":
                call = self._snapshot(block.tool)
                output.append(
                    call_item(
                        tools,
                        f"fc_{base}_{position}",
                        call.id,
                        call.name,
                        call.arguments or "{}",
                        "completed",
                        custom=self._tools[block.tool].custom,
                    )
                )
        status, incomplete = status_for(self._stop_reason())
        return response_object(
            response_id=response_id,
            model=model,
            created_at=int(time.time()) if created_at is None else created_at,
            status=status,
            output=output,
            usage=self.usage,
            incomplete_details=incomplete,
            request=request,
        )

    # --- internals ---------------------------------------------------------------------------

    def _joined(self, *kinds: str) -> str:
        return "".join(part for b in self._blocks if b.kind in kinds for part in b.parts)

    def _content(self, text: str, kind: str) -> None:
        if not text:
            return
        self._open_tool = None
        self._output_chars += len(text)
        last = self._blocks[-1] if self._blocks else None
        if last is None or last.kind != kind or last.signature:
            last = _Block(kind)
            self._blocks.append(last)
        last.parts.append(text)

    def _snapshot(self, index: int) -> ToolCallSnapshot:
        tool = self._tools[index]
        return ToolCallSnapshot(index, tool.id, tool.name, "".join(tool.arguments))

    def _stop_reason(self) -> StopReason:
        return final_finish(self._finish, bool(self._tools)).reason

    def _openai_id(self) -> str:
        if self._id.startswith("chatcmpl-"):
            return self._id
        return f"chatcmpl-{self._id}" if self._id else "chatcmpl-llmproxy"
