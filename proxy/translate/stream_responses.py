"""Responses API streams -> neutral stream events (the encoder is `stream_responses_encode.py`).

`ResponsesStreamDecoder` reads upstream Responses SSE (the ChatGPT backend, or any Responses
server). It is a pure state machine: no I/O, no clock.
Payloads are parsed JSON: shapes are tested with `isinstance(x, dict)` (see `stream_openai`).

The Responses stream says everything twice: content arrives as deltas, then again in "summary"
events (`output_text.done`, `content_part.done`, `output_item.done`, and the final
`response.completed` with the whole output). The decoder emits each item's content once: from its
deltas when there were any, else from the first summary event that carries it (the reference
proxy emitted text four times before it learnt this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.translate.responses_response import reasoning_text, stop_for, usage_from_responses
from proxy.translate.responses_tools import flat_name
from proxy.types import (
    CustomToolCall,
    Decoded,
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamFault,
    UsageUpdate,
)

# Error codes the Responses API puts in `error` events and failed responses -> HTTP status.
ERROR_CODE_STATUS: Mapping[str, int] = {
    "rate_limit_exceeded": 429,
    "usage_limit_reached": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_request_error": 400,
    "invalid_image": 400,
    "server_error": 500,
    "vector_store_timeout": 504,
}
_CALL_TYPES = frozenset({"function_call", "custom_tool_call"})


def stream_fault(error: Any) -> UpstreamFault:
    """An `error` event or a failed response, with the status its code stands for."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code") or error.get("type")
    status = ERROR_CODE_STATUS.get(code) if isinstance(code, str) else None
    return UpstreamFault(status, {"error": dict(error)})


@dataclass(slots=True)
class _Item:
    kind: str
    emitted: bool = False  # content (text, reasoning, arguments) already went out
    tool: int = -1  # dense tool index, for calls
    started: bool = False  # ToolCallStart went out
    summary_index: int | None = None
    pending: list[str] = field(default_factory=list)  # custom input, sent whole at the end


class ResponsesStreamDecoder:
    """Upstream Responses SSE payloads -> neutral events.

    Items are tracked by `output_index` (by `item_id` when a server leaves the index out).
    Calls get dense tool indexes in order; a namespaced call's name is flattened
    (`responses_tools.flat_name`); a custom call is one `CustomToolCall` with its raw input,
    once the input is whole. Refusals are `RefusalDelta`s. Finish comes from
    `response.completed` / `response.incomplete`, after the usage; `response.failed` and
    `error` events are reported as faults.
    """

    def __init__(self) -> None:
        self._started = False
        self._items: dict[Any, _Item] = {}
        self._tools = 0
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: str | None, payload: JSONObject) -> Sequence[Decoded]:
        kind = payload.get("type") or event
        if kind == "error" or (kind is None and payload.get("error")):
            return [stream_fault(payload.get("error") or payload)]
        if kind == "response.failed":
            response = payload.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            return [stream_fault(error or {"message": "the response failed"})]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            response = payload.get("response")
            response = response if isinstance(response, dict) else {}
            out.append(
                MessageStart(str(response.get("id") or ""), str(response.get("model") or ""))
            )
        if self._finished or not isinstance(kind, str):
            return out
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, payload, out)
        return out

    def close(self) -> list[StreamEvent]:
        return []

    # --- items ---------------------------------------------------------------------------------

    def _item(self, payload: JSONObject, kind: str = "") -> _Item:
        key = payload.get("output_index")
        if not isinstance(key, int):
            item = payload.get("item")
            key = payload.get("item_id") or (item.get("id") if isinstance(item, dict) else "")
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = _Item(kind)
        elif kind and not found.kind:
            found.kind = kind
        return found

    def _start_call(self, state: _Item, item: Mapping[str, Any], out: list[StreamEvent]) -> None:
        """Give a call its tool index; a function call is announced now, a custom call once
        its input is whole."""
        if state.started:
            return
        state.started = True
        state.tool = self._tools
        self._tools += 1
        if state.kind != "custom_tool_call":
            out.append(ToolCallStart(state.tool, *_call_identity(item, state.tool)))

    # --- handlers, one per event type ----------------------------------------------------------

    def _added(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        item = payload.get("item")
        if not isinstance(item, dict):
            return
        state = self._item(payload, str(item.get("type", "")))
        if state.kind in _CALL_TYPES:
            self._start_call(state, item, out)

    def _text_delta(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, str) and delta:
            self._item(payload, "message").emitted = True
            refusal = payload.get("type") == "response.refusal.delta"
            out.append(RefusalDelta(delta) if refusal else TextDelta(delta))

    def _summary_delta(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        state = self._item(payload, "reasoning")
        index = payload.get("summary_index", payload.get("content_index"))
        if state.emitted and index != state.summary_index:
            out.append(ReasoningDelta("\n\n"))  # summary parts are paragraphs
        state.summary_index = index if isinstance(index, int) else state.summary_index
        state.emitted = True
        out.append(ReasoningDelta(delta))

    def _arguments_delta(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        state = self._item(payload)
        if state.kind == "custom_tool_call" or payload.get("type", "").startswith(
            "response.custom"
        ):
            state.kind = "custom_tool_call"
            state.pending.append(delta)  # sent whole, as `{"input": ...}`, when it is done
        elif state.started:
            state.emitted = True
            out.append(ToolCallDelta(state.tool, delta))
        else:  # arguments before their call was announced: wait for the item
            state.pending.append(delta)

    def _arguments_done(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        state = self._item(payload)
        if state.started and state.kind == "function_call" and not state.emitted:
            arguments = payload.get("arguments")
            if isinstance(arguments, str) and arguments:
                state.emitted = True
                out.append(ToolCallDelta(state.tool, arguments))

    def _text_done(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        state = self._item(payload)
        if state.emitted:
            return
        part = payload.get("part")
        text = payload.get("text")
        refusal = payload.get("type") == "response.refusal.done"
        if refusal:
            text = payload.get("refusal")
        elif not isinstance(text, str) and isinstance(part, dict):
            refusal = part.get("type") == "refusal"
            text = part.get("refusal") if refusal else part.get("text")
        if not isinstance(text, str) or not text:
            return
        state.emitted = True
        if state.kind == "reasoning" or str(payload.get("type", "")).startswith(
            "response.reasoning"
        ):
            state.kind = "reasoning"
            out.append(ReasoningDelta(text))
        else:
            out.append(RefusalDelta(text) if refusal else TextDelta(text))

    def _item_done(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        item = payload.get("item")
        if isinstance(item, dict):
            self._complete_item(self._item(payload, str(item.get("type", ""))), item, out)

    def _complete_item(self, state: _Item, item: Mapping[str, Any], out: list[StreamEvent]) -> None:
        """Whatever of a finished item its deltas did not already deliver."""
        kind = item.get("type")
        if kind == "message" and not state.emitted:
            out += _message_events(item)
        elif kind == "reasoning" and not state.emitted:
            text = reasoning_text(item)
            if text:
                out.append(ReasoningDelta(text))
        elif kind in _CALL_TYPES:
            state.kind = str(kind)
            self._start_call(state, item, out)
            if not state.emitted:
                if kind == "custom_tool_call":
                    raw = item.get("input")
                    tool_input = raw if isinstance(raw, str) else "".join(state.pending)
                    identity = _call_identity(item, state.tool)
                    out.append(CustomToolCall(state.tool, *identity, tool_input))
                else:
                    arguments = str(item.get("arguments") or "".join(state.pending))
                    if arguments:
                        out.append(ToolCallDelta(state.tool, arguments))
        state.emitted = True
        state.pending.clear()

    def _completed(self, payload: JSONObject, out: list[StreamEvent]) -> None:
        response = payload.get("response")
        response = response if isinstance(response, dict) else {}
        output = response.get("output")
        # A server that sent no items along the way still put them in the final response.
        for position, item in enumerate(output if isinstance(output, list) else []):
            if isinstance(item, dict):
                state = self._items.get(position) or self._items.get(item.get("id"))
                if state is None:
                    state = self._items[position] = _Item(str(item.get("type", "")))
                if not state.emitted or (state.kind in _CALL_TYPES and not state.started):
                    self._complete_item(state, item, out)
        usage = response.get("usage")
        if isinstance(usage, dict):
            out.append(UsageUpdate(usage_from_responses(usage)))
        self._finished = True
        out.append(Finish(stop_for(response, self._tools > 0)))


def _call_identity(item: Mapping[str, Any], tool: int) -> tuple[str, str]:
    """A call item's id and flat name."""
    namespace = item.get("namespace")
    name = flat_name(namespace if isinstance(namespace, str) else None, str(item.get("name", "")))
    return str(item.get("call_id") or item.get("id") or f"call_{tool}"), name


def _message_events(item: Mapping[str, Any]) -> list[StreamEvent]:
    """A whole `message` item's parts: text as text, refusals as refusals."""
    parts = item.get("content")
    out: list[StreamEvent] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "refusal":
            refusal = part.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(RefusalDelta(refusal))
        elif isinstance(text := part.get("text"), str) and text:
            out.append(TextDelta(text))
    return out


_HANDLERS = {
    "response.output_item.added": ResponsesStreamDecoder._added,
    "response.output_text.delta": ResponsesStreamDecoder._text_delta,
    "response.refusal.delta": ResponsesStreamDecoder._text_delta,
    "response.reasoning_summary_text.delta": ResponsesStreamDecoder._summary_delta,
    "response.reasoning_text.delta": ResponsesStreamDecoder._summary_delta,
    "response.function_call_arguments.delta": ResponsesStreamDecoder._arguments_delta,
    "response.custom_tool_call_input.delta": ResponsesStreamDecoder._arguments_delta,
    "response.function_call_arguments.done": ResponsesStreamDecoder._arguments_done,
    "response.output_text.done": ResponsesStreamDecoder._text_done,
    "response.refusal.done": ResponsesStreamDecoder._text_done,
    "response.content_part.done": ResponsesStreamDecoder._text_done,
    "response.reasoning_summary_text.done": ResponsesStreamDecoder._text_done,
    "response.reasoning_summary_part.done": ResponsesStreamDecoder._text_done,
    "response.reasoning_text.done": ResponsesStreamDecoder._text_done,
    "response.output_item.done": ResponsesStreamDecoder._item_done,
    "response.completed": ResponsesStreamDecoder._completed,
    "response.incomplete": ResponsesStreamDecoder._completed,
}
