"""Neutral stream events -> the Responses API SSE a Responses client expects (Codex CLI, the
openai SDK's `responses.create(stream=True)`). A pure state machine: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from proxy.sse import encode_event
from proxy.translate.reasons import reported_or_estimated
from proxy.translate.responses_response import (
    message_item,
    reasoning_item,
    refusal_item,
    response_object,
    status_for,
)
from proxy.translate.responses_tools import ToolIndex, call_item, custom_arguments, custom_input
from proxy.types import (
    CustomToolCall,
    ErrorClass,
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

# Our error classes -> the `code` of a failed response. Codex acts on these: it waits and retries
# a rate limit, stops on a quota, compacts its history on a context overflow.
FAILURE_CODES: Mapping[str, str] = {
    ErrorClass.RATE_LIMITED.value: "rate_limit_exceeded",
    ErrorClass.QUOTA_EXHAUSTED.value: "insufficient_quota",
    ErrorClass.CONTEXT_LENGTH.value: "context_length_exceeded",
    ErrorClass.INVALID_REQUEST.value: "invalid_prompt",
    ErrorClass.CONTENT_FILTER.value: "invalid_prompt",
}


@dataclass(slots=True)
class _Open:
    """The text, refusal or reasoning item being streamed."""

    kind: str  # "message", "refusal" or "reasoning"
    output_index: int
    item_id: str
    parts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    custom: bool = False  # the upstream made it a custom call


class ResponsesStreamEncoder:
    """Neutral events -> the SSE of a Responses client.

    The sequence is the API's: `response.created`, `response.in_progress`, then per output item
    `output_item.added`, its deltas, its `*.done` events and `output_item.done` with the whole
    item, and at the end `response.completed` (or `response.incomplete`) carrying every item and
    the usage. Text and reasoning items close when something else starts; calls close at Finish,
    so interleaved argument fragments still land in the right call. Calls to namespaced and
    custom tools are restored to what the request declared (`responses_tools.ToolIndex`); a
    custom call's input is sent whole when the call closes.
    """

    def __init__(
        self,
        model: str,
        request: JSONObject,
        response_id: str,
        created_at: int,
        *,
        input_tokens_hint: int = 0,
    ) -> None:
        self._model = model
        self._request = request
        self._tools = ToolIndex.of(request)
        self._response_id = response_id
        self._base = response_id.removeprefix("resp_")
        self._created_at = created_at
        self._input_hint = input_tokens_hint
        self._seq = 0
        self._started = False
        self._output: list[JSONObject] = []
        self._open: _Open | None = None
        self._calls: dict[int, _Call] = {}
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._closed = False
        self._output_chars = 0

    def encode(self, event: StreamEvent) -> bytes:
        if self._closed or self._finish is not None:
            if isinstance(event, UsageUpdate):
                self._usage = event.usage
            return b""
        out = b""
        if not self._started:
            self._started = True
            head = self._response("in_progress", [], None)
            out = self._event("response.created", {"response": head})
            out += self._event("response.in_progress", {"response": head})
        if isinstance(event, TextDelta | ReasoningDelta):
            if not event.text:
                return out
            if isinstance(event, ReasoningDelta):
                kind = "reasoning"
            else:
                kind = "refusal" if type(event) is RefusalDelta else "message"
            return out + self._content(kind, event.text)
        if isinstance(event, ToolCallStart):
            return out + self._close_open() + self._call_start(event)
        if isinstance(event, ToolCallDelta):
            return out + self._call_delta(event)
        if isinstance(event, CustomToolCall):
            start = ToolCallStart(event.index, event.id, event.name)
            out += self._close_open() + self._call_start(start, custom=True)
            arguments = custom_arguments(event.input)
            self._output_chars += len(arguments)
            self._calls[event.index].arguments.append(arguments)
            return out
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
            return out
        if isinstance(event, ReasoningSignature):
            # A signature ends a thinking block; what follows is a new reasoning item.
            return out + (
                self._close_open() if self._open and self._open.kind == "reasoning" else b""
            )
        if isinstance(event, Finish):
            self._finish = event
            return out + self._close_open() + self._close_calls()
        if isinstance(event, MessageStart | RedactedReasoning):
            return out
        raise TypeError(f"not a stream event: {event!r}")

    def finish(self) -> bytes:
        """`response.completed` (or `.incomplete`) with every item and the usage."""
        if self._finish is None:
            raise RuntimeError("finish() before a Finish event: end a cut stream with error()")
        if self._closed:
            return b""
        self._closed = True
        status, incomplete = status_for(self._finish.reason)
        usage = reported_or_estimated(self._usage, self._input_hint, self._output_chars)
        body = self._response(status, self._output, usage, incomplete)
        name = "response.completed" if status == "completed" else "response.incomplete"
        return self._event(name, {"response": body})

    def error(self, message: str, error_type: str, code: str | None = None) -> bytes:
        """`response.failed`, and nothing after it: Codex and the SDK read the failure from it."""
        if self._closed:
            return b""
        self._closed = True
        out = b""
        if not self._started:
            self._started = True
            head = self._response("in_progress", [], None)
            out = self._event("response.created", {"response": head})
        failure = FAILURE_CODES.get(code or "", "server_error")
        error = {"code": failure, "message": message, "type": error_type}
        done = [item for item in self._output if item and item.get("status") != "in_progress"]
        body = self._response("failed", done, self._usage, None, error)
        return out + self._event("response.failed", {"response": body})

    # --- pieces --------------------------------------------------------------------------------

    def _response(
        self,
        status: str,
        output: list[JSONObject],
        usage: Usage | None,
        incomplete: JSONObject | None = None,
        error: JSONObject | None = None,
    ) -> JSONObject:
        return response_object(
            response_id=self._response_id,
            model=self._model,
            created_at=self._created_at,
            status=status,
            output=list(output),
            usage=usage,
            incomplete_details=incomplete,
            error=error,
            request=self._request,
        )

    def _event(self, name: str, fields: JSONObject) -> bytes:
        payload = {"type": name, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_event(orjson.dumps(payload), name)

    def _content(self, kind: str, text: str) -> bytes:
        self._output_chars += len(text)
        out = b""
        current = self._open
        if current is None or current.kind != kind:
            out += self._close_open()
            current = self._open_item(kind)
            out += self._opened(current)
        current.parts.append(text)
        position = {"item_id": current.item_id, "output_index": current.output_index}
        if kind == "message":
            return out + self._event(
                "response.output_text.delta",
                {**position, "content_index": 0, "delta": text, "logprobs": []},
            )
        if kind == "refusal":
            return out + self._event(
                "response.refusal.delta", {**position, "content_index": 0, "delta": text}
            )
        return out + self._event(
            "response.reasoning_summary_text.delta", {**position, "summary_index": 0, "delta": text}
        )

    def _open_item(self, kind: str) -> _Open:
        index = len(self._output)
        prefix = "rs" if kind == "reasoning" else "msg"
        opened = _Open(kind, index, f"{prefix}_{self._base}_{index}")
        self._output.append({})  # the slot; filled when the item closes
        self._open = opened
        return opened

    def _opened(self, item: _Open) -> bytes:
        position = {"item_id": item.item_id, "output_index": item.output_index}
        if item.kind != "reasoning":
            added = message_item(item.item_id, "", "in_progress")
            part = (
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if item.kind == "message"
                else {"type": "refusal", "refusal": ""}
            )
            return self._event(
                "response.output_item.added", {"output_index": item.output_index, "item": added}
            ) + self._event(
                "response.content_part.added", {**position, "content_index": 0, "part": part}
            )
        added = reasoning_item(item.item_id, "")
        return self._event(
            "response.output_item.added", {"output_index": item.output_index, "item": added}
        ) + self._event(
            "response.reasoning_summary_part.added",
            {**position, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
        )

    def _close_open(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        text = "".join(item.parts)
        position = {"item_id": item.item_id, "output_index": item.output_index}
        if item.kind == "message":
            done = message_item(item.item_id, text)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out = self._event(
                "response.output_text.done",
                {**position, "content_index": 0, "text": text, "logprobs": []},
            ) + self._event(
                "response.content_part.done", {**position, "content_index": 0, "part": part}
            )
        elif item.kind == "refusal":
            done = refusal_item(item.item_id, text)
            out = self._event(
                "response.refusal.done", {**position, "content_index": 0, "refusal": text}
            ) + self._event(
                "response.content_part.done",
                {**position, "content_index": 0, "part": done["content"][0]},
            )
        else:
            done = reasoning_item(item.item_id, text)
            out = self._event(
                "response.reasoning_summary_text.done",
                {**position, "summary_index": 0, "text": text},
            ) + self._event(
                "response.reasoning_summary_part.done",
                {**position, "summary_index": 0, "part": {"type": "summary_text", "text": text}},
            )
        self._output[item.output_index] = done
        return out + self._event(
            "response.output_item.done", {"output_index": item.output_index, "item": done}
        )

    def _call_start(self, event: ToolCallStart, *, custom: bool = False) -> bytes:
        index = len(self._output)
        call = _Call(index, f"fc_{self._base}_{index}", event.id, event.name, custom=custom)
        self._calls[event.index] = call
        added = call_item(
            self._tools, call.item_id, call.call_id, call.name, "", "in_progress", custom=custom
        )
        self._output.append(added)
        return self._event("response.output_item.added", {"output_index": index, "item": added})

    def _call_delta(self, event: ToolCallDelta) -> bytes:
        if not event.arguments:
            return b""
        call = self._calls.get(event.index)
        out = b""
        if call is None:  # arguments before their start: announce a call without a name
            out = self._close_open() + self._call_start(
                ToolCallStart(event.index, f"call_{self._base}_{event.index}", "")
            )
            call = self._calls[event.index]
        self._output_chars += len(event.arguments)
        call.arguments.append(event.arguments)
        if call.custom or self._tools.restore(call.name).custom:
            return out  # a custom call's input is sent whole, once it is known
        return out + self._event(
            "response.function_call_arguments.delta",
            {"item_id": call.item_id, "output_index": call.output_index, "delta": event.arguments},
        )

    def _close_calls(self) -> bytes:
        out = b""
        for call in sorted(self._calls.values(), key=lambda c: c.output_index):
            # A call that never got arguments would leave the client "" to json-parse.
            arguments = "".join(call.arguments) or "{}"
            item = call_item(
                self._tools,
                call.item_id,
                call.call_id,
                call.name,
                arguments,
                "completed",
                custom=call.custom,
            )
            position = {"item_id": item["id"], "output_index": call.output_index}
            if item["type"] == "custom_tool_call":
                raw = custom_input(arguments)
                out += self._event(
                    "response.custom_tool_call_input.delta", {**position, "delta": raw}
                )
                out += self._event(
                    "response.custom_tool_call_input.done", {**position, "input": raw}
                )
            else:
                out += self._event(
                    "response.function_call_arguments.done",
                    {**position, "name": item["name"], "arguments": arguments},
                )
            self._output[call.output_index] = item
            out += self._event(
                "response.output_item.done", {"output_index": call.output_index, "item": item}
            )
        self._calls.clear()
        return out
