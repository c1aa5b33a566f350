"""OpenAI streams: upstream chunks -> neutral events, and neutral events -> client SSE that the
official openai SDK parses and accumulates."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import httpx2
import openai
import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from proxy.errors import UpstreamStatusError
from proxy.providers.base import fault_error
from proxy.sse import SSEDecoder
from proxy.translate.replies import openai_reply_events
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.translate.stream_openai import OpenAIStreamDecoder, OpenAIStreamEncoder
from proxy.types import (
    CustomToolCall,
    Decoded,
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


def sse_payloads(name: str) -> list[tuple[str | None, JSONObject]]:
    decoder = SSEDecoder()
    raw = (STREAMS / name).read_bytes()
    events = decoder.feed(raw) + decoder.close()
    return [(e.event, orjson.loads(e.data)) for e in events if e.data != "[DONE]"]


def decode_openai(payloads: Iterable[JSONObject]) -> list[StreamEvent]:
    """Decode as the provider layer does: an upstream fault raises its classified error."""
    decoder = OpenAIStreamDecoder()
    out: list[StreamEvent] = []
    for payload in payloads:
        out.extend(raise_faults(decoder.feed(None, payload)))
    return out + decoder.close()


def raise_faults(decoded: Iterable[Decoded]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for event in decoded:
        if isinstance(event, UpstreamFault):
            raise fault_error(event, None)
        events.append(event)
    return events


def chunk(delta: JSONObject, finish: str | None = None, **extra: object) -> JSONObject:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


# --- decoder -----------------------------------------------------------------------------------


def test_openai_parallel_tool_calls_fixture() -> None:
    events = decode_openai(p for _, p in sse_payloads("openai_parallel_tools.sse"))
    assert events == [
        MessageStart("chatcmpl-BkQ2f3nV0aM6wTq1m9x4kLrS8yPz", "gpt-4.1-2025-04-14"),
        ToolCallStart(0, "call_mL4tYbSdq0k8WcHV1QfGHAeN", "get_weather"),
        ToolCallDelta(0, '{"lo'),
        ToolCallDelta(0, 'cation": "Par'),
        ToolCallDelta(0, 'is, France", "note": "say \\"hi\\" \\u00e9\\n"}'),
        ToolCallStart(1, "call_Qe7uZbH2mTn5XcR9vLp0WsJd", "get_time"),
        ToolCallDelta(1, '{"tz": "Europe/'),
        ToolCallDelta(1, 'Paris"}'),
        # Usage arrives in a later chunk; Finish waits for it.
        UsageUpdate(Usage(input_tokens=93, output_tokens=58, cache_read_input_tokens=1024)),
        Finish(StopReason.TOOL_USE),
    ]


def test_zai_reasoning_content_and_whole_tool_call_fixture() -> None:
    events = decode_openai(p for _, p in sse_payloads("zai_reasoning_tool.sse"))
    assert events == [
        MessageStart("2025112609150863d1b1c5e2ad4a4b", "glm-4.6"),
        ReasoningDelta("\n"),
        ReasoningDelta("The user wants"),
        ReasoningDelta(" the weather in Paris."),
        # Leading whitespace is held while the decoder checks for an inline <think> tag.
        TextDelta("\nLet me check "),
        TextDelta("that."),
        ToolCallStart(0, "call_-8201543214795513947", "get_weather"),
        ToolCallDelta(0, '{"city":"Paris","units":"metric"}'),
        UsageUpdate(Usage(input_tokens=149, output_tokens=41, cache_read_input_tokens=64)),
        Finish(StopReason.TOOL_USE),
    ]


def test_gemini_calls_all_at_index_zero_are_told_apart_by_id() -> None:
    events = decode_openai(p for _, p in sse_payloads("gemini_parallel_index0.sse"))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert starts == [
        ToolCallStart(0, "function-call-2913064811384021836", "get_weather"),
        ToolCallStart(1, "function-call-2913064811384023011", "get_weather"),
    ]
    assert deltas == [ToolCallDelta(0, '{"city":"Paris"}'), ToolCallDelta(1, '{"city":"Tokyo"}')]
    # Usage in every chunk: one update per distinct value, then Finish right away.
    assert events[-2:] == [
        UsageUpdate(Usage(input_tokens=61, output_tokens=20)),
        Finish(StopReason.TOOL_USE),
    ]


def test_upstream_indexes_are_made_dense_and_repeated_ids_continue_a_call() -> None:
    events = decode_openai(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 3, "id": "a", "function": {"name": "f", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 3, "id": "a", "function": {"arguments": "{}"}}]}),
            chunk({"tool_calls": [{"index": 7, "id": "b", "function": {"name": "g"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert [e for e in events if isinstance(e, ToolCallStart | ToolCallDelta)] == [
        ToolCallStart(0, "a", "f"),
        ToolCallDelta(0, "{}"),
        ToolCallStart(1, "b", "g"),
    ]


def test_a_call_waits_for_its_name_and_gets_a_synthetic_id() -> None:
    events = decode_openai(
        [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "1"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            chunk({}, "stop"),
        ]
    )
    assert events[1:] == [
        ToolCallStart(0, "call_chatcmpl-x_0", "f"),
        ToolCallDelta(0, '{"a":1'),
        ToolCallDelta(0, "}"),
        # "stop" after a tool call: the client must still run the tool.
        Finish(StopReason.TOOL_USE),
    ]


def test_parsed_arguments_and_legacy_function_call() -> None:
    events = decode_openai(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": {"x": 1}}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ]
    )
    assert ToolCallDelta(0, '{"x":1}') in events
    legacy = decode_openai(
        [chunk({"function_call": {"name": "f", "arguments": "{}"}}), chunk({}, "function_call")]
    )
    assert legacy[1:] == [
        ToolCallStart(0, "call_chatcmpl-x_0", "f"),
        ToolCallDelta(0, "{}"),
        Finish(StopReason.TOOL_USE),
    ]


def test_openrouter_reasoning_field_and_no_double_reasoning() -> None:
    events = decode_openai(
        [
            chunk({"reasoning": "think", "reasoning_details": [{"type": "reasoning.text"}]}),
            chunk({"reasoning_content": "a", "reasoning": "a"}),
            chunk({"content": "ok"}, "stop"),
        ]
    )
    assert events[1:] == [
        ReasoningDelta("think"),
        ReasoningDelta("a"),
        TextDelta("ok"),
        Finish(StopReason.END_TURN),
    ]


def test_finish_is_held_until_close_when_no_usage_comes() -> None:
    decoder = OpenAIStreamDecoder()
    assert decoder.feed(None, chunk({"content": "hi"}, "length")) == [
        MessageStart("chatcmpl-x", "m"),
        TextDelta("hi"),
    ]
    assert not decoder.finished
    assert decoder.close() == [Finish(StopReason.MAX_TOKENS)]
    assert decoder.finished
    assert decoder.close() == []


def test_usage_in_the_finish_chunk_emits_usage_then_finish_at_once() -> None:
    decoder = OpenAIStreamDecoder()
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert decoder.feed(None, chunk({"content": "x"}, "stop", usage=usage))[-2:] == [
        UsageUpdate(Usage(input_tokens=5, output_tokens=2)),
        Finish(StopReason.END_TURN),
    ]
    assert decoder.close() == []


def test_groq_usage_envelope() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    events = decode_openai([chunk({}, "stop", x_groq={"id": "req_1", "usage": usage})])
    assert UsageUpdate(Usage(input_tokens=5, output_tokens=2)) in events


def test_no_stream_without_finish_reason_reports_finish() -> None:
    events = decode_openai([chunk({"content": "partial"})])
    assert not any(isinstance(e, Finish) for e in events)


def test_inline_think_tags_become_reasoning_even_split_across_chunks() -> None:
    pieces = ["  <thi", "nk>\nplan", " it</th", "ink>", "\n\nAnswer", " <think>kept</think>"]
    events = decode_openai([chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert reasoning == "plan it"
    assert text == "Answer <think>kept</think>"


THINK_TEXTS = {
    "<think>\nNeed the time.\n</think>\n\nChecking the clock.": (
        "Need the time.",
        "Checking the clock.",
    ),
    "  <think>plan it </think>  Answer <think>kept</think>": (
        "plan it",
        "Answer <think>kept</think>",
    ),
    "<think>cut off mid-thought \n": ("cut off mid-thought", ""),
    "<think>cut at the tag </thi": ("cut at the tag </thi", ""),
    "<think></think>": ("", ""),
    "<thinking>not the tag</thinking>": ("", "<thinking>not the tag</thinking>"),
    "Plain <think>talk</think> about tags": ("", "Plain <think>talk</think> about tags"),
    "  \n": ("", "  \n"),
}


@pytest.mark.parametrize(("text", "expected"), THINK_TEXTS.items())
def test_inline_think_tags_read_the_same_whole_or_streamed_however_the_text_is_cut(
    text: str, expected: tuple[str, str]
) -> None:
    """A whole answer and its stream, cut into 1, 2 or 3 chunks at every place, give the same
    reasoning and text (an unterminated block is reasoning in both)."""
    body = {"id": "chatcmpl-x", "model": "m", "choices": [{"message": {"content": text}}]}
    whole = openai_reply_events(body)
    assert expected == (
        "".join(e.text for e in whole if isinstance(e, ReasoningDelta)),
        "".join(e.text for e in whole if isinstance(e, TextDelta)),
    )
    cuts = [()] + [(i,) for i in range(1, len(text))]
    cuts += [(i, j) for i in range(1, len(text)) for j in range(i + 1, len(text))]
    for cut in cuts:
        bounds = [0, *cut, len(text)]
        pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
        events = decode_openai([chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
        streamed = (
            "".join(e.text for e in events if isinstance(e, ReasoningDelta)),
            "".join(e.text for e in events if isinstance(e, TextDelta)),
        )
        assert streamed == expected, pieces


def test_content_that_only_looks_like_a_tag_start_is_released() -> None:
    events = decode_openai(
        [chunk({"content": "<"}), chunk({"content": "b>bold"}), chunk({}, "stop")]
    )
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("<b>bold")]
    held = decode_openai([chunk({"content": "<th"}), chunk({}, "stop")])
    assert held[1:] == [TextDelta("<th"), Finish(StopReason.END_TURN)]


def test_whitespace_before_tool_calls_is_released_before_the_call() -> None:
    events = decode_openai(
        [
            chunk({"content": "\n\n"}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ]
    )
    assert events[1:3] == [TextDelta("\n\n"), ToolCallStart(0, "c", "f")]


@pytest.mark.parametrize(
    ("payload", "status", "error_class"),
    [
        (
            {"error": {"message": "HTTP 500 - internal error", "type": "server_error"}},
            500,
            ErrorClass.SERVER_ERROR,
        ),
        (
            {"error": {"code": "1302", "message": "High concurrency usage of this API"}},
            429,
            ErrorClass.RATE_LIMITED,
        ),
        (
            {"error": {"code": "1113", "message": "Insufficient balance"}},
            402,
            ErrorClass.QUOTA_EXHAUSTED,
        ),
        (
            {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day"}},
            429,
            ErrorClass.RATE_LIMITED,
        ),
        ({"error": {"message": "Something broke"}}, None, ErrorClass.SERVER_ERROR),
        ({"error": "upstream exploded"}, None, ErrorClass.SERVER_ERROR),
    ],
)
def test_error_chunks_raise_classified_upstream_errors(
    payload: JSONObject, status: int | None, error_class: ErrorClass
) -> None:
    decoder = OpenAIStreamDecoder()
    decoder.feed(None, chunk({"content": "par"}))
    with pytest.raises(UpstreamStatusError) as caught:
        raise_faults(decoder.feed(None, payload))
    assert caught.value.status == status
    assert caught.value.error_class is error_class
    assert caught.value.body == payload


def test_openrouter_error_finish_reason_raises() -> None:
    with pytest.raises(UpstreamStatusError):
        decode_openai([chunk({"content": "x"}, "error")])


# --- encoder, checked with the openai SDK -------------------------------------------------------


def encode_all(events: Iterable[StreamEvent], *, include_usage: bool = True) -> bytes:
    encoder = OpenAIStreamEncoder("client-model", include_usage, 1750000000, "chatcmpl-proxy1")
    body = b"".join(encoder.encode(e) for e in events)
    return body + encoder.finish()


def sdk_chunks(body: bytes) -> list[ChatCompletionChunk]:
    """Every data chunk, validated against the SDK's pydantic model (strictly, not constructed)."""
    decoder = SSEDecoder()
    events = decoder.feed(body) + decoder.close()
    assert events[-1].data == "[DONE]"
    return [ChatCompletionChunk.model_validate_json(e.data) for e in events[:-1]]


def sdk_stream(body: bytes) -> openai.lib.streaming.chat.ChatCompletionStream[None]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(
        api_key="k",
        base_url="http://proxy.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    manager = client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "x"}])
    return manager.__enter__()


TOOL_EVENTS: list[StreamEvent] = [
    MessageStart("up-1", "upstream-model"),
    ReasoningDelta("Thinking about "),
    ReasoningDelta("it."),
    ReasoningSignature("sig"),
    TextDelta("Checking."),
    ToolCallStart(0, "call_a", "get_weather"),
    ToolCallDelta(0, '{"city": "Par'),
    ToolCallDelta(0, 'is", "q": "\\"x\\""}'),
    ToolCallStart(1, "call_b", "no_args"),
    UsageUpdate(Usage(input_tokens=90, output_tokens=30, cache_read_input_tokens=10)),
    Finish(StopReason.TOOL_USE),
]


def test_encoder_output_validates_and_accumulates_with_the_sdk() -> None:
    body = encode_all(TOOL_EVENTS)
    chunks = sdk_chunks(body)
    assert {c.id for c in chunks} == {"chatcmpl-proxy1"}
    assert {c.created for c in chunks} == {1750000000}
    assert {c.model for c in chunks} == {"client-model"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks[:-1])
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(c)
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Checking."
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "get_weather", '{"city": "Paris", "q": "\\"x\\""}'),
        ("call_b", "no_args", "{}"),
    ]
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "Thinking about it."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 100
    assert completion.usage.completion_tokens == 30
    assert completion.usage.total_tokens == 130
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 10


def test_sdk_stream_helper_reads_the_whole_body() -> None:
    stream = sdk_stream(encode_all(TOOL_EVENTS))
    for _ in stream:
        pass
    final = stream.get_final_completion()
    assert final.id == "chatcmpl-proxy1"
    assert final.choices[0].message.content == "Checking."
    stream.close()


def test_without_include_usage_there_is_no_usage_field_and_no_usage_chunk() -> None:
    body = encode_all(
        [MessageStart("u", "m"), TextDelta("hi"), Finish(StopReason.END_TURN)], include_usage=False
    )
    chunks = sdk_chunks(body)
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]
    assert all(b'"usage"' not in line for line in body.split(b"\n\n"))


def test_first_chunk_is_the_role_chunk_even_without_message_start() -> None:
    chunks = sdk_chunks(encode_all([TextDelta("a"), Finish(StopReason.MAX_TOKENS)]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-2].choices[0].finish_reason == "length"


def test_usage_estimate_when_the_upstream_reported_none() -> None:
    encoder = OpenAIStreamEncoder("m", True, 1, "chatcmpl-1", input_tokens_hint=42)
    encoder.encode(TextDelta("x" * 40))
    encoder.encode(Finish(StopReason.END_TURN))
    usage = sdk_chunks(encoder.finish())[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (42, 10)


def test_second_message_start_and_events_after_finish_are_absorbed() -> None:
    encoder = OpenAIStreamEncoder("m", False, 1, "chatcmpl-1")
    first = encoder.encode(MessageStart("a", "m"))
    assert encoder.encode(MessageStart("b", "m")) == b""
    assert encoder.encode(RedactedReasoning("zzz")) == b""
    encoder.encode(Finish(StopReason.END_TURN))
    assert encoder.encode(TextDelta("late")) == b""
    assert first.count(b"data: ") == 1


def test_finish_before_a_finish_event_is_a_programming_error() -> None:
    encoder = OpenAIStreamEncoder("m", False, 1, "chatcmpl-1")
    encoder.encode(TextDelta("a"))
    with pytest.raises(RuntimeError):
        encoder.finish()


def test_error_ending_has_no_done_and_the_sdk_raises_api_error() -> None:
    encoder = OpenAIStreamEncoder("m", True, 1, "chatcmpl-1")
    body = encoder.encode(MessageStart("a", "m")) + encoder.encode(TextDelta("partial"))
    body += encoder.error("upstream failed mid-stream", "api_error", "stream_cut")
    assert b"[DONE]" not in body
    assert encoder.encode(TextDelta("more")) == b""
    stream = sdk_stream(body)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for event in stream:
            if event.type == "content.delta" and event.delta:
                seen.append(event.delta)
    assert seen == ["partial"]
    assert caught.value.message == "upstream failed mid-stream"
    assert caught.value.body == {
        "message": "upstream failed mid-stream",
        "type": "api_error",
        "param": None,
        "code": "stream_cut",
    }


# --- round trip: Anthropic upstream -> OpenAI client ----------------------------------------------


def test_anthropic_upstream_to_openai_client() -> None:
    decoder = AnthropicStreamDecoder()
    events: list[StreamEvent] = []
    for name, payload in sse_payloads("anthropic_thinking_text_tool.sse"):
        events.extend(decoder.feed(name, payload))
    events.extend(decoder.close())
    stream = sdk_stream(encode_all(events))
    for _ in stream:
        pass
    completion = stream.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "I'll check the weather in Paris ☀️."
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {  # type: ignore[union-attr]
        "location": "Paris, France",
        "unit": "celsius",
    }
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == (
        "The user asks about Paris weather. I should call the tool."
    )
    assert completion.usage is not None
    # 472 uncached + 2048 cache reads + 100 cache writes.
    assert completion.usage.prompt_tokens == 2620
    assert completion.usage.completion_tokens == 89


def test_a_refusal_streams_as_delta_refusal_and_a_custom_call_as_a_function_call() -> None:
    decoded = decode_openai([chunk({"refusal": "No."}), chunk({}, "stop")])
    assert decoded[1:] == [RefusalDelta("No."), Finish(StopReason.END_TURN)]
    body = encode_all(
        [
            MessageStart("up-1", "m"),
            RefusalDelta("No."),
            CustomToolCall(0, "call_p", "apply_patch", "*** Begin"),
            Finish(StopReason.END_TURN),
        ]
    )
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for c in sdk_chunks(body):
        state.handle_chunk(c)
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert not message.content and message.refusal == "No."
    assert completion.choices[0].finish_reason == "tool_calls"
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]  # type: ignore[union-attr]
    assert calls == [("call_p", "apply_patch", '{"input":"*** Begin"}')]
