"""Anthropic streams: upstream SSE -> neutral events, and neutral events -> client SSE that the
official anthropic SDK validates and accumulates into the right Message."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.lib.streaming import MessageStream
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from proxy.errors import UpstreamStatusError
from proxy.providers.base import fault_error
from proxy.sse import SSEDecoder, SSEEvent
from proxy.translate.accumulate import MessageAccumulator
from proxy.translate.stream_anthropic import AnthropicStreamDecoder, AnthropicStreamEncoder
from proxy.translate.stream_openai import OpenAIStreamDecoder
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
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamFault,
    Usage,
    UsageUpdate,
)

STREAMS = Path(__file__).parent / "data" / "streams"
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
SIGNATURE = (
    "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds8/"
    "jQqYasNJ7SsDjkCGxwbBCC8fXhLQyBIJ8PZwhmQ=="
)


def sse_payloads(name: str) -> list[tuple[str | None, JSONObject]]:
    decoder = SSEDecoder()
    raw = (STREAMS / name).read_bytes()
    events = decoder.feed(raw) + decoder.close()
    return [(e.event, orjson.loads(e.data)) for e in events if e.data != "[DONE]"]


def decode_anthropic(pairs: Iterable[tuple[str | None, JSONObject]]) -> list[StreamEvent]:
    decoder = AnthropicStreamDecoder()
    out: list[StreamEvent] = []
    for name, payload in pairs:
        out.extend(decoder.feed(name, payload))
    return out + decoder.close()


def ev(kind: str, **fields: Any) -> tuple[str, JSONObject]:
    return kind, {"type": kind, **fields}


START = ev(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    },
)


# --- decoder -----------------------------------------------------------------------------------


def test_thinking_text_tool_use_fixture() -> None:
    start_usage = Usage(
        input_tokens=472,
        output_tokens=3,
        cache_read_input_tokens=2048,
        cache_creation_input_tokens=100,
    )
    assert decode_anthropic(sse_payloads("anthropic_thinking_text_tool.sse")) == [
        MessageStart("msg_01QkV3nJ8uZt2wE4rY6pL9mA", "claude-sonnet-4-5-20250929", start_usage),
        UsageUpdate(start_usage),
        ReasoningDelta("The user asks about Paris weather."),
        ReasoningDelta(" I should call the tool."),
        ReasoningSignature(SIGNATURE),
        TextDelta("I'll check the "),
        TextDelta("weather in Paris ☀️."),
        ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        ToolCallDelta(0, '{"location":'),
        ToolCallDelta(0, ' "Paris, Fr'),
        ToolCallDelta(0, 'ance", "unit": "celsius"}'),
        # output_tokens is cumulative; input and cache counts keep their message_start values.
        UsageUpdate(
            Usage(
                input_tokens=472,
                output_tokens=89,
                cache_read_input_tokens=2048,
                cache_creation_input_tokens=100,
            )
        ),
        Finish(StopReason.TOOL_USE),
    ]


def test_message_delta_usage_with_input_counts_replaces_them() -> None:
    events = decode_anthropic(
        [
            START,
            ev(
                "message_delta",
                delta={"stop_reason": "end_turn", "stop_sequence": None},
                usage={"output_tokens": 7, "input_tokens": 12, "cache_read_input_tokens": 3},
            ),
        ]
    )
    assert events[-2:] == [
        UsageUpdate(Usage(input_tokens=12, output_tokens=7, cache_read_input_tokens=3)),
        Finish(StopReason.END_TURN),
    ]


def test_stop_sequence_redacted_thinking_and_tool_indexes() -> None:
    events = decode_anthropic(
        [
            START,
            ev(
                "content_block_start",
                index=0,
                content_block={"type": "redacted_thinking", "data": "EmwK"},
            ),
            ev("content_block_stop", index=0),
            ev(
                "content_block_start",
                index=1,
                content_block={"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
            ),
            ev("content_block_stop", index=1),
            ev(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
            ),
            ev(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": "{}"},
            ),
            ev("content_block_stop", index=2),
            ev(
                "message_delta",
                delta={"stop_reason": "stop_sequence", "stop_sequence": "END"},
                usage={"output_tokens": 5},
            ),
            ev("message_stop"),
        ]
    )
    assert events[2:] == [
        RedactedReasoning("EmwK"),
        ToolCallStart(0, "toolu_a", "f"),
        ToolCallStart(1, "toolu_b", "g"),
        ToolCallDelta(1, "{}"),
        UsageUpdate(Usage(input_tokens=10, output_tokens=5)),
        Finish(StopReason.STOP_SEQUENCE, "END"),
    ]


def test_unknown_events_blocks_and_deltas_are_ignored_and_ping_too() -> None:
    events = decode_anthropic(
        [
            START,
            ev("ping"),
            ev(
                "content_block_start",
                index=0,
                content_block={
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                },
            ),
            ev(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": "{}"},
            ),
            ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            ev("content_block_delta", index=1, delta={"type": "citations_delta", "citation": {}}),
            ev("content_block_delta", index=9, delta={"type": "text_delta", "text": "orphan"}),
            ev("brand_new_event", stuff=1),
            ev("message_stop"),
        ]
    )
    assert events[2:] == [Finish(StopReason.END_TURN)]


def test_compatible_server_that_sends_the_whole_tool_input_at_start() -> None:
    events = decode_anthropic(
        [
            START,
            ev(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1]}},
            ),
        ]
    )
    assert events[2:] == [ToolCallStart(0, "t", "f"), ToolCallDelta(0, '{"a":[1]}')]


def test_event_type_from_payload_when_the_event_line_is_missing() -> None:
    events = decode_anthropic([(None, START[1]), (None, {"type": "message_stop"})])
    assert events[-1] == Finish(StopReason.END_TURN)


def test_finish_once_and_missing_stop_reason_finishes_at_message_stop() -> None:
    decoder = AnthropicStreamDecoder()
    decoder.feed(*START)
    assert decoder.feed(
        *ev("message_delta", delta={"stop_reason": None}, usage={"output_tokens": 2})
    ) == [UsageUpdate(Usage(input_tokens=10, output_tokens=2))]
    assert not decoder.finished
    assert decoder.feed(*ev("message_stop")) == [Finish(StopReason.END_TURN)]
    assert decoder.feed(*ev("message_stop")) == []
    assert decoder.finished


@pytest.mark.parametrize(
    ("error_type", "message", "status", "error_class"),
    [
        ("overloaded_error", "Overloaded", 529, ErrorClass.SERVER_ERROR),
        (
            "rate_limit_error",
            "Number of request tokens has exceeded your limit",
            429,
            ErrorClass.RATE_LIMITED,
        ),
        ("api_error", "Internal server error", 500, ErrorClass.SERVER_ERROR),
        ("billing_error", "Your credit balance is too low", 402, ErrorClass.QUOTA_EXHAUSTED),
        ("rate_limit_error", "usage limit exceeded (2056)", 429, ErrorClass.QUOTA_EXHAUSTED),
        (
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            400,
            ErrorClass.CONTEXT_LENGTH,
        ),
        ("mystery_error", "??", None, ErrorClass.SERVER_ERROR),
    ],
)
def test_error_event_raises_a_classified_upstream_error(
    error_type: str, message: str, status: int | None, error_class: ErrorClass
) -> None:
    decoder = AnthropicStreamDecoder()
    decoder.feed(*START)
    payload = {"type": "error", "error": {"type": error_type, "message": message}}
    (fault,) = decoder.feed("error", payload)
    assert isinstance(fault, UpstreamFault)  # reported, not classified, by the decoder
    with pytest.raises(UpstreamStatusError) as caught:
        raise fault_error(fault, None)
    assert caught.value.status == status
    assert caught.value.error_class is error_class
    assert caught.value.body == payload


# --- encoder, checked with the anthropic SDK ----------------------------------------------------


def encode_all(events: Iterable[StreamEvent]) -> bytes:
    encoder = AnthropicStreamEncoder("client-model", "msg_proxy1", 321)
    body = b"".join(encoder.encode(e) for e in events)
    return body + encoder.finish()


def parse_sse(body: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed(body) + decoder.close()


def validated(body: bytes) -> list[Any]:
    """Every event validated against the SDK's `RawMessageStreamEvent` union (pings aside), with
    the SSE event name equal to the payload type."""
    out = []
    for sse in parse_sse(body):
        payload = orjson.loads(sse.data)
        assert sse.event == payload["type"]
        if sse.event != "ping":
            out.append(EVENT_ADAPTER.validate_python(payload))
    return out


def sdk_stream(body: bytes) -> MessageStream[Any]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://proxy.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    manager = client.messages.stream(
        model="llmproxy-test-model", max_tokens=100, messages=[{"role": "user", "content": "x"}]
    )
    return manager.__enter__()


def final_message(body: bytes) -> Any:
    stream = sdk_stream(body)
    message = stream.get_final_message()
    stream.close()
    return message


def block_types(body: bytes) -> list[tuple[str, int, str]]:
    out = []
    for event in validated(body):
        if event.type == "content_block_start":
            out.append(("start", event.index, event.content_block.type))
        elif event.type == "content_block_stop":
            out.append(("stop", event.index, ""))
    return out


def test_encoder_output_validates_and_accumulates_with_the_sdk() -> None:
    events: list[StreamEvent] = [
        MessageStart("up", "upstream", Usage(input_tokens=50)),
        ReasoningDelta("Let me think."),
        ReasoningSignature("sig-1"),
        TextDelta("Calling "),
        TextDelta("tools."),
        ToolCallStart(0, "toolu_a", "get_weather"),
        ToolCallDelta(0, '{"city": "Pa'),
        ToolCallDelta(0, 'ris", "quote": "\\"q\\""}'),
        UsageUpdate(Usage(input_tokens=50, output_tokens=40, cache_read_input_tokens=7)),
        Finish(StopReason.TOOL_USE),
    ]
    body = encode_all(events)
    parsed = validated(body)
    assert parsed[0].type == "message_start"
    assert parsed[0].message.id == "msg_proxy1"
    assert parsed[0].message.usage.input_tokens == 50
    assert parse_sse(body)[1].event == "ping"
    assert [e.type for e in parsed[-2:]] == ["message_delta", "message_stop"]
    # The arguments travel as raw fragments that concatenate to the original text.
    fragments = [
        e.delta.partial_json
        for e in parsed
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert "".join(fragments) == '{"city": "Paris", "quote": "\\"q\\""}'
    message = final_message(body)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[0].signature == "sig-1"
    assert message.content[1].text == "Calling tools."
    assert message.content[2].id == "toolu_a"
    assert message.content[2].input == {"city": "Paris", "quote": '"q"'}
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 50
    assert message.usage.output_tokens == 40
    assert message.usage.cache_read_input_tokens == 7


def test_block_indices_are_sequential_and_every_block_is_stopped() -> None:
    body = encode_all(
        [
            TextDelta("a"),
            ReasoningDelta("interleaved thinking"),  # thinking after text: a new block
            ReasoningSignature("s1"),
            ReasoningDelta("second thought"),  # after a signature: another new block
            RedactedReasoning("opaque"),
            ToolCallStart(0, "t0", "f"),
            ToolCallStart(1, "t1", "g"),
            TextDelta("b"),
            Finish(StopReason.END_TURN),
        ]
    )
    assert block_types(body) == [
        ("start", 0, "text"),
        ("stop", 0, ""),
        ("start", 1, "thinking"),
        ("stop", 1, ""),
        ("start", 2, "thinking"),
        ("stop", 2, ""),
        ("start", 3, "redacted_thinking"),
        ("stop", 3, ""),
        ("start", 4, "tool_use"),
        ("stop", 4, ""),
        ("start", 5, "tool_use"),
        ("stop", 5, ""),
        ("start", 6, "text"),
        ("stop", 6, ""),
    ]
    message = final_message(body)
    assert message.content[3].data == "opaque"
    # end_turn after tool calls is reported as tool_use so the client runs them.
    assert message.stop_reason == "tool_use"


def test_signature_without_thinking_text_opens_its_own_block() -> None:
    message = final_message(
        encode_all([TextDelta("x"), ReasoningSignature("s"), Finish(StopReason.END_TURN)])
    )
    assert [(b.type, getattr(b, "signature", None)) for b in message.content] == [
        ("text", None),
        ("thinking", "s"),
    ]


def test_interleaved_tool_arguments_are_held_and_sent_whole() -> None:
    # call 0 starts, call 1 starts, then fragments of both arrive interleaved.
    body = encode_all(
        [
            ToolCallStart(0, "call_0", "f"),
            ToolCallDelta(0, '{"a": '),
            ToolCallStart(1, "call_1", "g"),
            ToolCallDelta(1, '{"b": '),
            ToolCallDelta(0, "1}"),
            ToolCallDelta(1, "2}"),
            Finish(StopReason.TOOL_USE),
        ]
    )
    assert block_types(body) == [
        ("start", 0, "tool_use"),
        ("stop", 0, ""),
        ("start", 1, "tool_use"),
        ("stop", 1, ""),
    ]
    message = final_message(body)
    assert [(b.id, b.input) for b in message.content] == [
        ("call_0", {"a": 1}),
        ("call_1", {"b": 2}),
    ]


def test_several_held_calls_come_out_whole_and_in_order() -> None:
    events: list[StreamEvent] = [ToolCallStart(0, "c0", "f"), ToolCallDelta(0, '{"i": 0}')]
    for i in (1, 2, 3):
        events += [
            ToolCallStart(i, f"c{i}", "f"),
            ToolCallDelta(i, '{"i": '),
            ToolCallDelta(i, f"{i}}}"),
        ]
    events += [TextDelta("done"), Finish(StopReason.TOOL_USE)]
    body = encode_all(events)
    assert block_types(body) == [
        (kind, index, block)
        for index in range(5)
        for kind, block in (("start", "text" if index == 4 else "tool_use"), ("stop", ""))
    ]
    message = final_message(body)
    assert [(b.id, b.input) for b in message.content[:4]] == [(f"c{i}", {"i": i}) for i in range(4)]
    assert message.content[4].text == "done"


def test_arguments_for_a_closed_call_are_refused() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1", 0)
    encoder.encode(ToolCallStart(0, "a", "f"))
    encoder.encode(TextDelta("after"))
    with pytest.raises(ValueError, match="not open"):
        encoder.encode(ToolCallDelta(0, "{}"))


def test_unsafe_tool_ids_are_made_anthropic_safe() -> None:
    message = final_message(
        encode_all(
            [
                ToolCallStart(0, "functions.get_weather:0", "get_weather"),
                Finish(StopReason.TOOL_USE),
            ]
        )
    )
    assert message.content[0].id == "functions_get_weather_0"
    assert message.content[0].input == {}


def test_input_hint_and_output_estimate_without_upstream_usage() -> None:
    body = encode_all([MessageStart("u", "m"), TextDelta("y" * 41), Finish(StopReason.MAX_TOKENS)])
    parsed = validated(body)
    assert parsed[0].message.usage.input_tokens == 321
    assert parsed[-2].usage.output_tokens == 11
    assert parsed[-2].delta.stop_reason == "max_tokens"


def test_second_message_start_is_absorbed_and_events_after_finish_ignored() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1", 0)
    encoder.encode(MessageStart("a", "m"))
    assert encoder.encode(MessageStart("b", "m")) == b""
    encoder.encode(Finish(StopReason.END_TURN))
    assert encoder.encode(TextDelta("late")) == b""
    assert encoder.finish() == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert encoder.finish() == b""


def test_finish_before_a_finish_event_is_a_programming_error() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1", 0)
    with pytest.raises(RuntimeError):
        encoder.finish()


def test_error_ending_never_has_message_stop_and_the_sdk_raises() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1", 5)
    body = encoder.encode(TextDelta("partial answer"))
    body += encoder.error("Upstream failed mid-stream", "overloaded_error")
    assert encoder.encode(TextDelta("more")) == b""
    events = parse_sse(body)
    assert events[-1].event == "error"
    assert orjson.loads(events[-1].data) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Upstream failed mid-stream"},
    }
    assert all(e.event not in ("message_stop", "message_delta") for e in events)
    stream = sdk_stream(body)
    with pytest.raises(anthropic.APIStatusError) as caught:
        for _ in stream:
            pass
    assert "Upstream failed mid-stream" in str(caught.value)


# --- round trip: OpenAI-format upstream -> Anthropic client -------------------------------------


def openai_events(name: str) -> list[StreamEvent]:
    decoder = OpenAIStreamDecoder()
    out: list[StreamEvent] = []
    for sse_name, payload in sse_payloads(name):
        out.extend(decoder.feed(sse_name, payload))
    return out + decoder.close()


def test_openai_parallel_tool_calls_to_anthropic_client() -> None:
    body = encode_all(openai_events("openai_parallel_tools.sse"))
    parsed = validated(body)
    fragments = [
        e.delta.partial_json
        for e in parsed
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    # Fragments of the first call stream as they came; the second call follows whole.
    assert fragments == [
        '{"lo',
        'cation": "Par',
        'is, France", "note": "say \\"hi\\" \\u00e9\\n"}',
        '{"tz": "Europe/Paris"}',
    ]
    message = final_message(body)
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        (
            "tool_use",
            "call_mL4tYbSdq0k8WcHV1QfGHAeN",
            "get_weather",
            {"location": "Paris, France", "note": 'say "hi" é\n'},
        ),
        ("tool_use", "call_Qe7uZbH2mTn5XcR9vLp0WsJd", "get_time", {"tz": "Europe/Paris"}),
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 93
    assert message.usage.cache_read_input_tokens == 1024
    assert message.usage.output_tokens == 58


def test_zai_reasoning_to_anthropic_thinking_blocks() -> None:
    message = final_message(encode_all(openai_events("zai_reasoning_tool.sse")))
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "\nThe user wants the weather in Paris."
    assert message.content[0].signature == ""
    assert message.content[1].text == "\nLet me check that."
    assert message.content[2].id == "call_-8201543214795513947"
    assert message.content[2].input == {"city": "Paris", "units": "metric"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (149, 41)


def test_gemini_index_zero_calls_to_anthropic_client() -> None:
    message = final_message(encode_all(openai_events("gemini_parallel_index0.sse")))
    assert [(b.name, b.input) for b in message.content] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]


def test_anthropic_upstream_through_neutral_events_back_to_anthropic() -> None:
    pairs = sse_payloads("anthropic_thinking_text_tool.sse")
    message = final_message(encode_all(decode_anthropic(pairs)))
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == SIGNATURE
    assert message.content[1].text == "I'll check the weather in Paris ☀️."
    assert message.content[2].input == {"location": "Paris, France", "unit": "celsius"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (472, 89)
    assert message.usage.cache_creation_input_tokens == 100


# --- property: the SDK view of the stream equals the accumulator rendering ---------------------

_segment = st.one_of(
    st.tuples(st.just("text"), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("thinking"), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("signature"), st.text(alphabet="abc=", min_size=1, max_size=4)),
    st.tuples(st.just("redacted"), st.text(alphabet="xyz", min_size=1, max_size=4)),
    st.tuples(
        st.just("tool"),
        st.dictionaries(
            st.text(max_size=3), st.integers(-(2**53), 2**53) | st.text(max_size=4), max_size=3
        ),
    ),
)


@settings(max_examples=60, deadline=None)
@given(segments=st.lists(_segment, max_size=10), cuts=st.lists(st.integers(1, 9), max_size=4))
def test_sdk_accumulation_matches_the_accumulator(
    segments: list[tuple[str, Any]], cuts: list[int]
) -> None:
    events: list[StreamEvent] = [MessageStart("u", "m")]
    tools = 0
    for kind, value in segments:
        if kind == "text":
            events.append(TextDelta(value))
        elif kind == "thinking":
            events.append(ReasoningDelta(value))
        elif kind == "signature":
            events.append(ReasoningSignature(value))
        elif kind == "redacted":
            events.append(RedactedReasoning(value))
        else:
            arguments = orjson.dumps(value).decode()
            events.append(ToolCallStart(tools, f"call_{tools}", "tool"))
            points = sorted({c for c in cuts if c < len(arguments)})
            for a, b in zip([0, *points], [*points, len(arguments)], strict=True):
                events.append(ToolCallDelta(tools, arguments[a:b]))
            tools += 1
    events.append(Finish(StopReason.END_TURN))
    acc = MessageAccumulator()
    acc.extend(events)
    expected = acc.to_anthropic("client-model", message_id="msg_proxy1")
    body = encode_all(events)
    validated(body)
    message = final_message(body).to_dict()
    assert message["content"] == expected["content"]
    assert message["stop_reason"] == expected["stop_reason"]


def test_a_refusal_is_text_and_a_custom_call_a_tool_use_with_its_input() -> None:
    message = final_message(
        encode_all(
            [
                MessageStart("up-1", "m"),
                RefusalDelta("No."),
                CustomToolCall(0, "call_p", "apply_patch", "*** Begin"),
                Finish(StopReason.END_TURN),
            ]
        )
    )
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "No."
    assert (message.content[1].name, message.content[1].input) == (
        "apply_patch",
        {"input": "*** Begin"},
    )
    assert message.stop_reason == "tool_use"
