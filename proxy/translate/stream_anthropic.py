"""Anthropic Messages streams <-> neutral stream events.

`AnthropicStreamDecoder` reads upstream (event name, payload) pairs; `AnthropicStreamEncoder`
writes the client's SSE. Both are pure state machines: no I/O, no clock, no randomness.
Payloads are parsed JSON: shapes are tested with `isinstance(x, dict)` (see `stream_openai`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.frozen import replace
from proxy.translate.common import anthropic_tool_id, fallback_tool_id
from proxy.translate.reasons import (
    anthropic_stop_to_stop,
    final_finish,
    reported_or_estimated,
    stop_to_anthropic,
    usage_from_anthropic,
    usage_to_anthropic,
)
from proxy.translate.responses_tools import function_form
from proxy.types import (
    CustomToolCall,
    Decoded,
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamFault,
    Usage,
    UsageUpdate,
)

# Anthropic error types -> the HTTP status the API pairs them with.
ERROR_TYPE_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def stream_fault(payload: JSONObject) -> UpstreamFault:
    """An Anthropic `error` event, with the status its error type stands for."""
    error = payload.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    status = ERROR_TYPE_STATUS.get(error_type) if isinstance(error_type, str) else None
    return UpstreamFault(status, payload)


def _merge_usage(base: Usage, usage: Mapping[str, Any]) -> Usage:
    """Anthropic `message_delta` usage is cumulative, and a counter it omits keeps its
    `message_start` value (input and cache counts usually arrive only at the start)."""
    parsed = usage_from_anthropic(usage)
    changes = {
        key: getattr(parsed, key)
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
        if isinstance(usage.get(key), int)
    }
    return replace(base, **changes)


class AnthropicStreamDecoder:
    """Upstream Anthropic SSE -> neutral events.

    Tool-use blocks get dense tool indexes in order. `content_block_stop` emits nothing: block
    boundaries are implied by the next event's kind. Finish is emitted at the `message_delta`
    that carries `stop_reason` (after its UsageUpdate), or at `message_stop` if none did.
    Unknown events and block types (server tools, citations) are ignored.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, str | int] = {}  # upstream block index -> kind or tool index
        self._tools = 0
        self._usage = Usage()
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: str | None, payload: JSONObject) -> Sequence[Decoded]:
        kind = payload.get("type") or event
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "message_start":
            message = payload.get("message")
            message = message if isinstance(message, dict) else {}
            usage = message.get("usage")
            self._usage = usage_from_anthropic(usage if isinstance(usage, dict) else None)
            start = MessageStart(
                id=str(message.get("id") or ""),
                model=str(message.get("model") or ""),
                usage=self._usage,
            )
            return [start, UsageUpdate(self._usage)]
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            return self._finish(Finish(StopReason.END_TURN))
        if kind == "error":
            return [stream_fault(payload)]
        return []

    def close(self) -> list[StreamEvent]:
        return []

    def _block_start(self, payload: JSONObject) -> list[StreamEvent]:
        block = payload.get("content_block")
        index = payload.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return []
        block_type = block.get("type")
        if block_type == "text":
            self._blocks[index] = "text"
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if block_type == "thinking":
            self._blocks[index] = "thinking"
            out: list[StreamEvent] = []
            thinking = block.get("thinking")
            if isinstance(thinking, str) and thinking:
                out.append(ReasoningDelta(thinking))
            signature = block.get("signature")
            if isinstance(signature, str) and signature:
                out.append(ReasoningSignature(signature))
            return out
        if block_type == "redacted_thinking":
            self._blocks[index] = "redacted"
            return [RedactedReasoning(str(block.get("data") or ""))]
        if block_type == "tool_use":
            tool = self._tools
            self._tools += 1
            self._blocks[index] = tool
            out = [ToolCallStart(tool, str(block.get("id") or ""), str(block.get("name") or ""))]
            initial = block.get("input")
            # Some compatible servers put the whole input in the start and send no deltas.
            if isinstance(initial, dict) and initial:
                out.append(ToolCallDelta(tool, orjson.dumps(initial).decode()))
            return out
        return []

    def _delta(self, payload: JSONObject) -> list[StreamEvent]:
        delta = payload.get("delta")
        index = payload.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if not isinstance(delta, dict) or block is None:
            return []
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if delta_type == "input_json_delta":
            partial = delta.get("partial_json")
            if isinstance(block, int) and isinstance(partial, str) and partial:
                return [ToolCallDelta(block, partial)]
            return []
        if delta_type == "thinking_delta":
            thinking = delta.get("thinking")
            return [ReasoningDelta(thinking)] if isinstance(thinking, str) and thinking else []
        if delta_type == "signature_delta":
            signature = delta.get("signature")
            return [ReasoningSignature(signature)] if isinstance(signature, str) else []
        return []

    def _message_delta(self, payload: JSONObject) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._usage = _merge_usage(self._usage, usage)
            out.append(UsageUpdate(self._usage))
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            stop_sequence = delta.get("stop_sequence")
            out.extend(
                self._finish(
                    Finish(
                        anthropic_stop_to_stop(str(delta["stop_reason"])),
                        stop_sequence if isinstance(stop_sequence, str) else None,
                    )
                )
            )
        return out

    def _finish(self, finish: Finish) -> list[StreamEvent]:
        if self._finished:
            return []
        self._finished = True
        return [finish]


# --- Encoder -----------------------------------------------------------------------------------


def _event(name: bytes, body: JSONObject) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(body) + b"\n\n"


_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


@dataclass(slots=True)
class _QueuedCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class AnthropicStreamEncoder:
    """Neutral events -> the client's Anthropic SSE.

    Blocks open and close strictly in sequence, as Anthropic itself streams: a new block starts
    whenever the event kind changes, a new tool call starts, reasoning resumes after a signature,
    or for each redacted block (started and stopped at once).

    Tool calls: the first call of a run streams live. OpenAI upstreams identify fragments by
    index and could in principle interleave calls, which Anthropic framing cannot express, so
    calls that start while a tool block is open are held and sent whole (start, one
    `input_json_delta` with the raw concatenated arguments, stop) as soon as the open block ends.
    In practice (sequential upstreams) this only delays the 2nd..nth parallel call until the
    end of the turn; in every case the arguments reach the client byte for byte.

    `message_delta` is sent at Finish with the latest usage (all four counters when an upstream
    reported usage, else an output estimate of 4 characters per token); `finish()` sends
    `message_stop`. `error()` ends the stream without `message_stop`.
    """

    def __init__(self, model: str, message_id: str, input_tokens_hint: int) -> None:
        self._model = model
        self._message_id = message_id
        self._input_hint = input_tokens_hint
        self._started = False
        self._kind: str | None = None  # "text", "thinking", "tool" or None: the open block
        self._index = -1  # the open block's index (or the last one's)
        self._signed = False  # the open thinking block already has its signature
        self._open_tool: int | None = None
        self._queued: dict[int, _QueuedCall] = {}
        self._any_tool = False
        self._usage: Usage | None = None
        self._output_chars = 0
        self._finish: Finish | None = None
        self._closed = False

    def encode(self, event: StreamEvent) -> bytes:
        if self._closed or self._finish is not None:
            if isinstance(event, UsageUpdate):
                self._usage = event.usage
            return b""
        out = b""
        if not self._started:
            out = self._message_start(event if isinstance(event, MessageStart) else None)
        if isinstance(event, TextDelta):
            if not event.text:
                return out
            self._output_chars += len(event.text)
            if self._kind != "text":
                out += self._open({"type": "text", "text": ""}, "text")
            return out + self._delta(b'{"type":"text_delta","text":', event.text)
        if isinstance(event, ToolCallDelta):
            return out + self._tool_delta(event)
        if isinstance(event, ReasoningDelta):
            if not event.text:
                return out
            self._output_chars += len(event.text)
            if self._kind != "thinking" or self._signed:
                out += self._open({"type": "thinking", "thinking": "", "signature": ""}, "thinking")
            return out + self._delta(b'{"type":"thinking_delta","thinking":', event.text)
        if isinstance(event, ReasoningSignature):
            if self._kind != "thinking" or self._signed:
                out += self._open({"type": "thinking", "thinking": "", "signature": ""}, "thinking")
            self._signed = True
            return out + self._delta(b'{"type":"signature_delta","signature":', event.signature)
        if isinstance(event, ToolCallStart):
            return out + self._tool_start(event)
        if isinstance(event, CustomToolCall):  # Anthropic tools take JSON input
            start, arguments = function_form(event)
            return out + self._tool_start(start) + self._tool_delta(arguments)
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
            return out
        if isinstance(event, RedactedReasoning):
            out += self._open({"type": "redacted_thinking", "data": event.data}, "redacted")
            return out + self._close_block()
        if isinstance(event, Finish):
            return out + self._finish_event(event)
        if isinstance(event, MessageStart):
            # A later upstream attempt's start (mid-stream failover) is absorbed.
            return out
        raise TypeError(f"not a stream event: {event!r}")

    def finish(self) -> bytes:
        """`message_stop`: only after a Finish event (a cut stream ends with `error()`)."""
        if self._finish is None:
            raise RuntimeError("finish() before a Finish event: end a cut stream with error()")
        if self._closed:
            return b""
        self._closed = True
        return _MESSAGE_STOP

    def error(self, message: str, error_type: str, code: str | None = None) -> bytes:
        """An `error` event and nothing after it, never `message_stop`. Anthropic's error event
        has no `code`: the error class is left out."""
        self._closed = True
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return _event(b"error", body)

    # --- pieces ------------------------------------------------------------------------------

    def _message_start(self, start: MessageStart | None) -> bytes:
        self._started = True
        usage = start.usage if start is not None else Usage()
        body = {
            "type": "message_start",
            "message": {
                "id": self._message_id,
                "type": "message",
                "role": "assistant",
                "model": self._model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    **usage_to_anthropic(usage),
                    "input_tokens": usage.input_tokens or self._input_hint,
                },
            },
        }
        return _event(b"message_start", body) + _PING

    def _open(self, block: JSONObject, kind: str) -> bytes:
        return self._close_block() + self._start_block(block, kind)

    def _start_block(self, block: JSONObject, kind: str) -> bytes:
        self._index += 1
        self._kind = kind
        self._signed = False
        body = {"type": "content_block_start", "index": self._index, "content_block": block}
        return _event(b"content_block_start", body)

    def _close_block(self) -> bytes:
        """Stop the open block, then send the tool calls held while it was open."""
        out = self._stop_block()
        while self._queued:
            tool = next(iter(self._queued))
            call = self._queued.pop(tool)
            out += self._start_block(self._tool_block(tool, call.id, call.name), "tool")
            self._open_tool = tool
            if call.arguments:
                out += self._arguments("".join(call.arguments))
            out += self._stop_block()
        return out

    def _stop_block(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        self._open_tool = None
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _delta(self, head: bytes, value: str) -> bytes:
        index = str(self._index).encode()
        return _DELTA_HEAD + index + b',"delta":' + head + orjson.dumps(value) + b"}}\n\n"

    def _tool_start(self, event: ToolCallStart) -> bytes:
        self._any_tool = True
        if self._kind == "tool":
            self._queued[event.index] = _QueuedCall(event.id, event.name)
            return b""
        return self._open_tool_block(event.index, event.id, event.name)

    def _open_tool_block(self, tool: int, call_id: str, name: str) -> bytes:
        out = self._open(self._tool_block(tool, call_id, name), "tool")
        self._open_tool = tool
        return out

    def _tool_block(self, tool: int, call_id: str, name: str) -> JSONObject:
        # Our own message id is already Anthropic-safe, so the fallback id is too.
        safe_id = anthropic_tool_id(call_id, fallback_tool_id(self._message_id, tool))
        return {"type": "tool_use", "id": safe_id, "name": name, "input": {}}

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        if not event.arguments:
            return b""
        self._output_chars += len(event.arguments)
        if event.index == self._open_tool:
            return self._arguments(event.arguments)
        queued = self._queued.get(event.index)
        if queued is None:
            raise ValueError(f"arguments for tool call {event.index}, which is not open")
        queued.arguments.append(event.arguments)
        return b""

    def _arguments(self, arguments: str) -> bytes:
        return self._delta(b'{"type":"input_json_delta","partial_json":', arguments)

    def _finish_event(self, event: Finish) -> bytes:
        out = self._close_block()
        self._finish = event
        final = final_finish(event, self._any_tool)
        usage: JSONObject = usage_to_anthropic(
            reported_or_estimated(self._usage, self._input_hint, self._output_chars)
        )
        if self._usage is None:  # the input estimate went out in `message_start`
            usage = {"output_tokens": usage["output_tokens"]}
        body = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_to_anthropic(final.reason),
                "stop_sequence": final.stop_sequence,
            },
            "usage": usage,
        }
        return out + _event(b"message_delta", body)
