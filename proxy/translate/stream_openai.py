"""OpenAI chat-completion streams <-> neutral stream events.

`OpenAIStreamDecoder` reads upstream `chat.completion.chunk` payloads; `OpenAIStreamEncoder`
writes the client's SSE. Both are pure state machines: no I/O, no clock, no randomness.
Only choice 0 is read: the proxy never asks upstreams for `n > 1`.

Payloads are parsed JSON: shapes are tested with `isinstance(x, dict)`, not `Mapping`, whose
ABC check cost 3% of a 20-chunk stream's CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.translate.common import ThinkTags
from proxy.translate.reasons import (
    final_finish,
    openai_finish,
    reported_or_estimated,
    stop_to_openai_finish,
    usage_from_openai,
    usage_to_openai,
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
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamFault,
    Usage,
    UsageUpdate,
)


def stream_fault(payload: JSONObject) -> UpstreamFault:
    """A chunk that carries `error` instead of choices. OpenAI's wire format pairs no status with
    an in-stream error; what its code or wording stands for (Z.ai's business codes, a status in
    the text) is the classifier's reading (`classify.fault_status`)."""
    return UpstreamFault(None, payload)


@dataclass(slots=True)
class _UpstreamCall:
    """One upstream tool call while its fragments arrive."""

    index: int  # our dense index
    id: str
    name: str
    started: bool = False  # ToolCallStart (or CustomToolCall) emitted
    pending: list[str] = field(default_factory=list)  # arguments received before the name
    custom: bool = False  # a custom tool's call: its input is held and sent whole


class OpenAIStreamDecoder:
    """Upstream chunks -> neutral events.

    Tool calls get dense indexes in order of appearance. A fragment starts a new call when its
    upstream `index` is new, or when it carries an `id` different from the call already at that
    index (Gemini's OpenAI endpoint sends every call as index 0). A call without an id gets a
    stable synthetic one; a call whose name is still unknown holds its arguments until the name
    arrives, so ToolCallStart always precedes its ToolCallDelta events. A call to a custom tool
    (`type: "custom"`, a raw `custom.input`) is one CustomToolCall, sent once its input is
    complete: when another call starts, or at the finish.

    Finish is held back until a chunk with `usage` arrives at or after the finish reason, or
    until `close()`: with `include_usage` OpenAI sends usage in a separate, later chunk, and
    client encoders must see the final usage before they finalize. A finish reason of `stop`
    after tool calls becomes TOOL_USE (several providers report `stop` there).
    """

    def __init__(self) -> None:
        self._started = False
        self._message_id = ""
        self._by_upstream: dict[int, _UpstreamCall] = {}
        self._calls: list[_UpstreamCall] = []
        self._finish: Finish | None = None
        self._finished = False
        self._last_usage: Usage | None = None
        self._think_tags = ThinkTags()

    @property
    def finished(self) -> bool:
        """Finish has been emitted."""
        return self._finished

    def feed(self, event: str | None, payload: JSONObject) -> Sequence[Decoded]:
        """One upstream chunk. `event` (the SSE event name) is unused by this dialect."""
        if payload.get("error"):
            return [stream_fault(payload)]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self._message_id = str(payload.get("id") or "")
            out.append(MessageStart(id=self._message_id, model=str(payload.get("model") or "")))
        choices = payload.get("choices")
        if isinstance(choices, list) and not self._finished:
            for choice in choices:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    if choice.get("finish_reason") == "error" and self._finish is None:
                        # OpenRouter: the provider behind it failed mid-stream.
                        self._choice({**choice, "finish_reason": None}, out)
                        failed = {"error": {"message": "upstream finished with an error"}}
                        return [*out, stream_fault(failed)]
                    self._choice(choice, out)
                    break
        usage = payload.get("usage")
        if not usage:
            # Groq reports usage in its own envelope.
            x_groq = payload.get("x_groq")
            usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
        if isinstance(usage, dict) and usage:
            parsed = usage_from_openai(usage)
            if parsed != self._last_usage:
                self._last_usage = parsed
                out.append(UsageUpdate(parsed))
            self._emit_finish(out)
        return out

    def close(self) -> list[StreamEvent]:
        """End of the upstream stream: a held Finish, and calls still waiting for their name."""
        out: list[StreamEvent] = []
        self._flush(out)
        self._emit_finish(out)
        return out

    def _flush(self, out: list[StreamEvent]) -> None:
        """Release held content: it must precede Finish."""
        self._think_tags.close(out)
        for call in self._calls:
            if not call.started:
                self._start(call, out)

    def _end_custom_calls(self, out: list[StreamEvent]) -> None:
        for call in self._calls:
            if call.custom and not call.started:
                self._start(call, out)

    def _choice(self, choice: Mapping[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            # Most chunks carry only `content` (and `role`): the rarer keys are looked up only
            # when one is there, one set test in C instead of five lookups a chunk.
            rich = not _RICH_DELTA_KEYS.isdisjoint(delta)
            if rich:
                self._reasoning(delta, out)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._think_tags.feed(content, out)
            if rich:
                self._refusal_and_calls(delta, out)
        if choice.get("finish_reason") and self._finish is None:
            finish = openai_finish(choice)
            self._finish = final_finish(finish, bool(self._calls))

    @staticmethod
    def _reasoning(delta: Mapping[str, Any], out: list[StreamEvent]) -> None:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            # OpenRouter and newer vLLM call it `reasoning`; some send both with equal text.
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(ReasoningDelta(reasoning))

    def _refusal_and_calls(self, delta: Mapping[str, Any], out: list[StreamEvent]) -> None:
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(RefusalDelta(refusal))
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for fragment in tool_calls:
                if isinstance(fragment, dict):
                    self._tool_fragment(fragment, out)
        function_call = delta.get("function_call")
        if isinstance(function_call, dict):  # legacy single-function streaming
            self._tool_fragment({"index": 0, "function": function_call}, out)

    def _tool_fragment(self, fragment: Mapping[str, Any], out: list[StreamEvent]) -> None:
        # Text held to look for a <think> tag is settled: the text part is over.
        self._think_tags.close(out)
        raw_index = fragment.get("index")
        call_id = fragment.get("id")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        custom = fragment.get("custom")
        function = custom if isinstance(custom, dict) else fragment.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        name = name if isinstance(name, str) and name else None
        if isinstance(raw_index, int):
            upstream_index = raw_index
        elif call_id is None and self._calls:  # no index, no id: continues the latest call
            upstream_index = next(
                (k for k, v in self._by_upstream.items() if v is self._calls[-1]), -1
            )
        else:
            upstream_index = -1 - len(self._calls)  # no index: a private slot per new call
        call = self._by_upstream.get(upstream_index)
        if call is None or (call_id is not None and call.id != call_id and call.started):
            self._end_custom_calls(out)
            dense = len(self._calls)
            call = _UpstreamCall(dense, call_id or f"call_{self._message_id}_{dense}", "")
            self._calls.append(call)
            self._by_upstream[upstream_index] = call
        elif call_id is not None and not call.started:
            call.id = call_id
        if name is not None and not call.name:
            call.name = name
        if isinstance(custom, dict) or fragment.get("type") == "custom":
            call.custom = True
        if call.custom:
            text = function.get("input")
            if isinstance(text, str) and text and not call.started:
                call.pending.append(text)
            return
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send parsed arguments
            arguments = orjson.dumps(arguments).decode()
        if not call.started:
            if isinstance(arguments, str) and arguments:
                call.pending.append(arguments)
            if call.name:
                self._start(call, out)
        elif isinstance(arguments, str) and arguments:
            out.append(ToolCallDelta(call.index, arguments))

    @staticmethod
    def _start(call: _UpstreamCall, out: list[StreamEvent]) -> None:
        call.started = True
        if call.custom:
            out.append(CustomToolCall(call.index, call.id, call.name, "".join(call.pending)))
            call.pending.clear()
            return
        out.append(ToolCallStart(call.index, call.id, call.name))
        if call.pending:
            out.append(ToolCallDelta(call.index, "".join(call.pending)))
            call.pending.clear()

    def _emit_finish(self, out: list[StreamEvent]) -> None:
        if self._finish is not None and not self._finished:
            self._flush(out)
            self._finished = True
            out.append(self._finish)


_RICH_DELTA_KEYS = frozenset(
    {"reasoning_content", "reasoning", "refusal", "tool_calls", "function_call"}
)
_DONE = b"data: [DONE]\n\n"


class OpenAIStreamEncoder:
    """Neutral events -> the client's `chat.completion.chunk` SSE.

    Every chunk carries the same `id` and `created`, and the `model` that wrote it;
    `system_fingerprint` is omitted (optional in the schema, and we have none to report). With
    `include_usage`, non-final chunks carry `"usage": null` and `finish()` sends the
    `choices: []` usage chunk, as OpenAI does. The first event of any kind produces the role
    chunk; a later MessageStart (a mid-stream takeover) only changes the `model` the following
    chunks name. Reasoning goes out as `delta.reasoning_content`, a refusal as `delta.refusal`,
    a custom tool call as a function call (`responses_tools.function_form`); signatures and
    redacted reasoning have no OpenAI form and are dropped. Events after Finish are ignored.

    Only the delta is serialized per chunk: the envelope is pre-encoded once.
    """

    def __init__(
        self,
        model: str,
        include_usage: bool,
        created: int,
        completion_id: str,
        *,
        input_tokens_hint: int = 0,
    ) -> None:
        self._head: JSONObject = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        envelope = orjson.dumps(self._head)[:-1]
        self._prefix = b"data: " + envelope + b',"choices":[{"index":0,"delta":'
        self._tail = b"}" if not include_usage else b',"usage":null}'
        self._suffix = b',"logprobs":null,"finish_reason":null}]' + self._tail + b"\n\n"
        self._include_usage = include_usage
        self._input_hint = input_tokens_hint
        self._started = False
        self._finish: Finish | None = None
        self._closed = False
        self._usage: Usage | None = None
        self._args_seen: dict[int, bool] = {}
        self._output_chars = 0

    def encode(self, event: StreamEvent) -> bytes:
        if self._closed or self._finish is not None:
            if isinstance(event, UsageUpdate):
                self._usage = event.usage
            return b""
        out = b""
        first = not self._started
        if first:
            self._started = True
            out = self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            if not event.text:
                return out
            self._output_chars += len(event.text)
            if type(event) is RefusalDelta:
                return out + self._chunk({"refusal": event.text})
            return out + self._chunk({"content": event.text})
        if isinstance(event, ToolCallDelta):
            if not event.arguments:
                return out
            self._output_chars += len(event.arguments)
            self._args_seen[event.index] = True
            return out + self._chunk(
                {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
            )
        if isinstance(event, ReasoningDelta):
            self._output_chars += len(event.text)
            return out + self._chunk({"reasoning_content": event.text}) if event.text else out
        if isinstance(event, ToolCallStart):
            self._args_seen.setdefault(event.index, False)
            call = {
                "index": event.index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return out + self._chunk({"tool_calls": [call]})
        if isinstance(event, CustomToolCall):  # chat clients call functions
            start, arguments = function_form(event)
            return out + self.encode(start) + self.encode(arguments)
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
            return out
        if isinstance(event, Finish):
            return out + self._finish_chunk(event)
        if isinstance(event, MessageStart):
            if not first and event.model and event.model != self._head["model"]:
                self._name_model(event.model)
            return out
        if isinstance(event, ReasoningSignature | RedactedReasoning):
            return out
        raise TypeError(f"not a stream event: {event!r}")

    def _name_model(self, model: str) -> None:
        """A mid-stream takeover by another model: every chunk names its model, so the chunks
        from here on name the one that writes them."""
        self._head = {**self._head, "model": model}
        envelope = orjson.dumps(self._head)[:-1]
        self._prefix = b"data: " + envelope + b',"choices":[{"index":0,"delta":'

    def finish(self) -> bytes:
        """The end of a complete answer: the usage chunk (if asked for) and `[DONE]`."""
        if self._finish is None:
            raise RuntimeError("finish() before a Finish event: end a cut stream with error()")
        if self._closed:
            return b""
        self._closed = True
        if not self._include_usage:
            return _DONE
        usage = reported_or_estimated(self._usage, self._input_hint, self._output_chars)
        chunk = {**self._head, "choices": [], "usage": usage_to_openai(usage)}
        return b"data: " + orjson.dumps(chunk) + b"\n\n" + _DONE

    def error(self, message: str, error_type: str, code: str | None = None) -> bytes:
        """An in-stream error chunk, and nothing after it: no `[DONE]`, so a truncated answer
        never looks finished. The openai SDK raises `APIError` on a chunk with `error`."""
        self._closed = True
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _chunk(self, delta: JSONObject) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._suffix

    def _finish_chunk(self, event: Finish) -> bytes:
        self._finish = event
        out = b""
        # A call that never got arguments would leave the client with "" to json-parse.
        for index, seen in self._args_seen.items():
            if not seen:
                call = {"index": index, "function": {"arguments": "{}"}}
                out += self._chunk({"tool_calls": [call]})
        reason = final_finish(event, bool(self._args_seen)).reason
        finish_reason = orjson.dumps(stop_to_openai_finish(reason))
        return (
            out
            + self._prefix
            + b'{},"logprobs":null,"finish_reason":'
            + finish_reason
            + b"}]"
            + self._tail
            + b"\n\n"
        )
