"""Responses SSE <-> neutral events: each piece of content once, errors classified, and what the
encoder writes reads back as what it was given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from proxy.errors import UpstreamStatusError
from proxy.providers.base import fault_error
from proxy.sse import SSEDecoder
from proxy.translate.stream_responses import ResponsesStreamDecoder
from proxy.translate.stream_responses_encode import ResponsesStreamEncoder
from proxy.types import (
    CustomToolCall,
    Decoded,
    ErrorClass,
    Finish,
    MessageStart,
    ReasoningDelta,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamFault,
    Usage,
    UsageUpdate,
)

CREATED = {
    "type": "response.created",
    "response": {"id": "resp_1", "model": "gpt-5.2", "status": "in_progress"},
}
USAGE = {
    "input_tokens": 10,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 16,
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Hello world", "annotations": []}],
}


def completed(output: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "response.completed",
        "response": {
            "id": "resp_1",
            "status": "completed",
            "output": output or [],
            "usage": USAGE,
            **extra,
        },
    }


def decode(*payloads: dict[str, Any]) -> list[StreamEvent]:
    """Decode as the provider layer does: an upstream fault raises its classified error."""
    decoder = ResponsesStreamDecoder()
    events: list[StreamEvent] = []
    for payload in payloads:
        events += raise_faults(decoder.feed(payload["type"], payload))
    return events + decoder.close()


def raise_faults(decoded: Sequence[Decoded]) -> list[StreamEvent]:
    for event in decoded:
        if isinstance(event, UpstreamFault):
            raise fault_error(event, None)
    return [e for e in decoded if not isinstance(e, UpstreamFault)]


def content(events: list[StreamEvent]) -> list[StreamEvent]:
    return [e for e in events if not isinstance(e, MessageStart | UsageUpdate)]


def test_text_from_deltas_is_not_repeated_by_the_summary_events() -> None:
    at = {"item_id": "msg_1", "output_index": 0}
    events = decode(
        CREATED,
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**MESSAGE, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            **at,
            "content_index": 0,
            "part": {"type": "output_text", "text": ""},
        },
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": "Hello"},
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": " world"},
        {"type": "response.output_text.done", **at, "content_index": 0, "text": "Hello world"},
        {
            "type": "response.content_part.done",
            **at,
            "content_index": 0,
            "part": {"type": "output_text", "text": "Hello world"},
        },
        {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
        completed([MESSAGE]),
    )
    assert events[0] == MessageStart("resp_1", "gpt-5.2")
    assert content(events) == [TextDelta("Hello"), TextDelta(" world"), Finish(StopReason.END_TURN)]
    assert events[-2] == UsageUpdate(Usage(6, 6, 4, 0, 2))


@pytest.mark.parametrize("first_summary", ["text_done", "part_done", "item_done", "completed"])
def test_text_only_in_summary_events_is_taken_once(first_summary: str) -> None:
    at = {"item_id": "msg_1", "output_index": 0}
    summaries = {
        "text_done": {
            "type": "response.output_text.done",
            **at,
            "content_index": 0,
            "text": "Hello world",
        },
        "part_done": {
            "type": "response.content_part.done",
            **at,
            "content_index": 0,
            "part": {"type": "output_text", "text": "Hello world"},
        },
        "item_done": {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
    }
    order = (
        list(summaries)[list(summaries).index(first_summary) :]
        if first_summary in summaries
        else []
    )
    events = decode(CREATED, *(summaries[name] for name in order), completed([MESSAGE]))
    assert content(events) == [TextDelta("Hello world"), Finish(StopReason.END_TURN)]


def test_function_calls_with_and_without_deltas() -> None:
    streamed = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "lookup",
        "namespace": "crm",
        "arguments": '{"q":"x"}',
        "status": "completed",
    }
    quiet = {
        "id": "fc_2",
        "type": "function_call",
        "call_id": "call_2",
        "name": "w",
        "arguments": "{}",
        "status": "completed",
    }
    events = decode(
        CREATED,
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**streamed, "arguments": "", "status": "in_progress"},
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 0,
            "delta": '{"q":',
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 0,
            "delta": '"x"}',
        },
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 0,
            "arguments": '{"q":"x"}',
        },
        {"type": "response.output_item.done", "output_index": 0, "item": streamed},
        {"type": "response.output_item.done", "output_index": 1, "item": quiet},
        completed([streamed, quiet]),
    )
    assert content(events) == [
        ToolCallStart(0, "call_1", "crm__lookup"),
        ToolCallDelta(0, '{"q":'),
        ToolCallDelta(0, '"x"}'),
        ToolCallStart(1, "call_2", "w"),
        ToolCallDelta(1, "{}"),
        Finish(StopReason.TOOL_USE),
    ]


def test_a_custom_call_is_one_event_with_its_raw_input_and_reasoning_parts_paragraphs() -> None:
    custom = {
        "id": "ctc_1",
        "type": "custom_tool_call",
        "call_id": "call_9",
        "name": "apply_patch",
        "input": "",
    }
    events = decode(
        CREATED,
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "First.",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 1,
            "delta": "Then.",
        },
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 1,
            "text": "Then.",
        },
        {"type": "response.output_item.added", "output_index": 1, "item": custom},
        {
            "type": "response.custom_tool_call_input.delta",
            "item_id": "ctc_1",
            "output_index": 1,
            "delta": '*** Begin "x"',
        },
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {**custom, "input": '*** Begin "x"'},
        },
        completed(),
    )
    assert content(events) == [
        ReasoningDelta("First."),
        ReasoningDelta("\n\n"),
        ReasoningDelta("Then."),
        CustomToolCall(0, "call_9", "apply_patch", '*** Begin "x"'),
        Finish(StopReason.TOOL_USE),
    ]


def test_output_only_in_the_final_response_is_not_lost() -> None:
    events = decode(CREATED, completed([MESSAGE]))
    assert content(events) == [TextDelta("Hello world"), Finish(StopReason.END_TURN)]


def test_incomplete_is_a_max_tokens_stop() -> None:
    events = decode(
        CREATED,
        {
            "type": "response.incomplete",
            "response": {
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
            },
        },
    )
    assert content(events) == [Finish(StopReason.MAX_TOKENS)]


@pytest.mark.parametrize(
    ("payload", "error_class", "status"),
    [
        (
            {
                "type": "response.failed",
                "response": {
                    "error": {
                        "code": "usage_limit_reached",
                        "message": "The usage limit has been reached",
                    }
                },
            },
            ErrorClass.QUOTA_EXHAUSTED,
            429,
        ),
        (
            {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None},
            ErrorClass.RATE_LIMITED,
            429,
        ),
        (
            {
                "type": "response.failed",
                "response": {"error": {"code": "context_length_exceeded", "message": "Too long"}},
            },
            ErrorClass.CONTEXT_LENGTH,
            400,
        ),
        (
            {
                "type": "response.failed",
                "response": {"error": {"code": "server_error", "message": "oops"}},
            },
            ErrorClass.SERVER_ERROR,
            500,
        ),
    ],
)
def test_failures_are_classified(
    payload: dict[str, Any], error_class: ErrorClass, status: int
) -> None:
    with pytest.raises(UpstreamStatusError) as failed:
        decode(CREATED, payload)
    assert (failed.value.error_class, failed.value.status) == (error_class, status)


def test_an_openai_style_error_chunk_raises() -> None:
    decoder = ResponsesStreamDecoder()
    with pytest.raises(UpstreamStatusError):
        raise_faults(decoder.feed(None, {"error": {"message": "HTTP 500 - boom"}}))


# --- the encoder ---------------------------------------------------------------------------------


def encoded(
    events: list[StreamEvent], request: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    encoder = ResponsesStreamEncoder("gpt-5.2", request or {}, "resp_t", 1700000000)
    raw = b"".join(encoder.encode(e) for e in events) + encoder.finish()
    return [(e.event or "", orjson.loads(e.data)) for e in SSEDecoder().feed(raw)]


STREAM: list[StreamEvent] = [
    MessageStart("x", "m"),
    ReasoningDelta("Think"),
    ReasoningDelta("ing."),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallStart(0, "call_a", "crm__lookup"),
    ToolCallStart(1, "call_b", "apply_patch"),
    ToolCallDelta(0, '{"q":'),
    ToolCallDelta(1, '{"input":"*** Begin"}'),
    ToolCallDelta(0, '"x"}'),
    UsageUpdate(Usage(6, 6, 4, 0, 2)),
    Finish(StopReason.TOOL_USE),
]
TOOLS = {
    "tools": [
        {
            "type": "namespace",
            "name": "crm",
            "description": "",
            "tools": [{"type": "function", "name": "lookup"}],
        },
        {"type": "custom", "name": "apply_patch"},
    ]
}


def test_encoder_writes_the_api_sequence_and_restores_tools() -> None:
    events = encoded(STREAM, TOOLS)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert [i["type"] for i in final["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    reasoning, message, lookup, patch = final["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Thinking."}]
    assert message["content"][0]["text"] == "Hello"
    assert (lookup["namespace"], lookup["name"], lookup["arguments"]) == (
        "crm",
        "lookup",
        '{"q":"x"}',
    )
    assert (patch["name"], patch["input"], patch["call_id"]) == (
        "apply_patch",
        "*** Begin",
        "call_b",
    )
    assert final["usage"]["input_tokens"] == 10 and final["usage"]["output_tokens"] == 6
    # The custom call's input goes out whole; the function's arguments as they came.
    assert "response.custom_tool_call_input.done" in names
    deltas = [d["delta"] for n, d in events if n == "response.function_call_arguments.delta"]
    assert deltas == ['{"q":', '"x"}']


def test_what_the_encoder_writes_decodes_to_the_same_content() -> None:
    events = encoded(STREAM)
    decoder = ResponsesStreamDecoder()
    decoded: list[StreamEvent] = []
    for name, payload in events:
        decoded += decoder.feed(name, payload)
    text = "".join(e.text for e in decoded if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in decoded if isinstance(e, ReasoningDelta))
    starts = [e for e in decoded if isinstance(e, ToolCallStart)]
    arguments = {
        s.index: "".join(
            e.arguments for e in decoded if isinstance(e, ToolCallDelta) and e.index == s.index
        )
        for s in starts
    }
    assert (text, reasoning) == ("Hello", "Thinking.")
    assert [(s.id, s.name) for s in starts] == [
        ("call_a", "crm__lookup"),
        ("call_b", "apply_patch"),
    ]
    assert arguments == {0: '{"q":"x"}', 1: '{"input":"*** Begin"}'}
    assert decoded[-1] == Finish(StopReason.TOOL_USE)


def test_max_tokens_ends_incomplete_and_errors_end_failed() -> None:
    events = encoded([TextDelta("Hi"), Finish(StopReason.MAX_TOKENS)])
    name, data = events[-1]
    assert name == "response.incomplete"
    assert data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    encoder = ResponsesStreamEncoder("m", {}, "resp_e", 0)
    raw = encoder.error("quota used up", "rate_limit_error", ErrorClass.QUOTA_EXHAUSTED.value)
    (created, _), (failed, body) = [(e.event, orjson.loads(e.data)) for e in SSEDecoder().feed(raw)]
    assert (created, failed) == ("response.created", "response.failed")
    assert body["response"]["error"] == {
        "code": "insufficient_quota",
        "message": "quota used up",
        "type": "rate_limit_error",
    }
    assert encoder.encode(TextDelta("late")) == b"" and encoder.error("x", "y") == b""
