"""MessageAccumulator: neutral events -> complete responses that the SDK models accept, and the
partial snapshot mid-stream failover relies on."""

from __future__ import annotations

from pathlib import Path

import orjson
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from proxy.sse import SSEDecoder
from proxy.translate.accumulate import MessageAccumulator, PartialMessage, ToolCallSnapshot
from proxy.translate.common import RAW_ARGUMENTS_KEY
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.translate.stream_openai import OpenAIStreamDecoder
from proxy.types import (
    CustomToolCall,
    Finish,
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

STREAMS = Path(__file__).parent / "data" / "streams"


def fixture_events(
    name: str, decoder: OpenAIStreamDecoder | AnthropicStreamDecoder
) -> list[StreamEvent]:
    sse = SSEDecoder()
    out: list[StreamEvent] = []
    for event in sse.feed((STREAMS / name).read_bytes()) + sse.close():
        if event.data != "[DONE]":
            out.extend(decoder.feed(event.event, orjson.loads(event.data)))
    return out + decoder.close()


def accumulate(events: list[StreamEvent]) -> MessageAccumulator:
    acc = MessageAccumulator()
    acc.extend(events)
    return acc


def test_anthropic_stream_to_both_dialects() -> None:
    acc = accumulate(fixture_events("anthropic_thinking_text_tool.sse", AnthropicStreamDecoder()))
    message = Message.model_validate(acc.to_anthropic("claude-client"))
    assert message.id == "msg_01QkV3nJ8uZt2wE4rY6pL9mA"
    assert message.model == "claude-client"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature.startswith("EqQB")  # type: ignore[union-attr]
    assert message.content[2].input == {"location": "Paris, France", "unit": "celsius"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 2048

    completion = ChatCompletion.model_validate(acc.to_openai("gpt-client", created=1700000000))
    assert completion.id == "chatcmpl-msg_01QkV3nJ8uZt2wE4rY6pL9mA"
    assert completion.created == 1700000000
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather in Paris ☀️."
    assert choice.message.model_extra == {
        "reasoning_content": "The user asks about Paris weather. I should call the tool."
    }
    calls = choice.message.tool_calls or []
    assert orjson.loads(calls[0].function.arguments) == {  # type: ignore[union-attr]
        "location": "Paris, France",
        "unit": "celsius",
    }
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 472 + 2048 + 100


def test_openai_stream_to_both_dialects() -> None:
    acc = accumulate(fixture_events("openai_parallel_tools.sse", OpenAIStreamDecoder()))
    completion = ChatCompletion.model_validate(acc.to_openai("m", completion_id="chatcmpl-own"))
    assert completion.id == "chatcmpl-own"
    message = completion.choices[0].message
    assert message.content is None  # tool calls only
    assert [c.function.arguments for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        '{"location": "Paris, France", "note": "say \\"hi\\" \\u00e9\\n"}',
        '{"tz": "Europe/Paris"}',
    ]
    anthropic_message = Message.model_validate(acc.to_anthropic("m", message_id="msg_own"))
    assert anthropic_message.id == "msg_own"
    assert [b.input for b in anthropic_message.content] == [  # type: ignore[union-attr]
        {"location": "Paris, France", "note": 'say "hi" é\n'},
        {"tz": "Europe/Paris"},
    ]
    assert anthropic_message.usage.input_tokens == 93


def test_blocks_follow_kind_changes_and_signatures() -> None:
    acc = accumulate(
        [
            MessageStart("u", "m"),
            TextDelta("a"),
            ReasoningDelta("t1"),
            ReasoningSignature("s1"),
            ReasoningDelta("t2"),
            RedactedReasoning("r"),
            TextDelta("b"),
            TextDelta("c"),
            Finish(StopReason.STOP_SEQUENCE, "###"),
        ]
    )
    rendered = acc.to_anthropic("m")
    assert rendered["content"] == [
        {"type": "text", "text": "a"},
        {"type": "thinking", "thinking": "t1", "signature": "s1"},
        {"type": "thinking", "thinking": "t2", "signature": ""},
        {"type": "redacted_thinking", "data": "r"},
        {"type": "text", "text": "bc"},
    ]
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == ("stop_sequence", "###")
    Message.model_validate(rendered)
    openai_message = acc.to_openai("m", created=0)["choices"][0]["message"]
    # Split text blocks are joined as a client reading the stream sees them: without separator.
    assert openai_message["content"] == "abc"
    assert openai_message["reasoning_content"] == "t1t2"


def test_broken_and_empty_arguments_and_unsafe_ids() -> None:
    acc = accumulate(
        [
            ToolCallStart(0, "functions.f:0", "f"),
            ToolCallDelta(0, '{"a": 1'),  # cut by max_tokens
            ToolCallStart(1, "call_2", "g"),
            Finish(StopReason.MAX_TOKENS),
        ]
    )
    content = acc.to_anthropic("m")["content"]
    assert content[0]["id"] == "functions_f_0"
    assert content[0]["input"] == {RAW_ARGUMENTS_KEY: '{"a": 1'}
    assert content[1]["input"] == {}
    calls = acc.to_openai("m", created=0)["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"a": 1', "{}"]
    assert calls[0]["id"] == "functions.f:0"  # OpenAI clients get the id unchanged
    assert acc.to_openai("m", created=0)["choices"][0]["finish_reason"] == "length"


def test_end_turn_with_tool_calls_is_reported_as_tool_use() -> None:
    acc = accumulate(
        [ToolCallStart(0, "c", "f"), ToolCallDelta(0, "{}"), Finish(StopReason.END_TURN)]
    )
    assert acc.to_anthropic("m")["stop_reason"] == "tool_use"
    assert acc.to_openai("m", created=0)["choices"][0]["finish_reason"] == "tool_calls"


def test_plain_text_answer_and_defaults() -> None:
    acc = MessageAccumulator(input_tokens_hint=12)
    acc.extend([TextDelta("x" * 10), Finish(StopReason.END_TURN)])
    completion = acc.to_openai("m")
    ChatCompletion.model_validate(completion)
    assert completion["id"] == "chatcmpl-llmproxy"
    assert completion["created"] > 1_600_000_000
    assert completion["choices"][0]["message"]["content"] == "x" * 10
    assert "tool_calls" not in completion["choices"][0]["message"]
    # No upstream usage: input from the hint, output estimated.
    assert completion["usage"]["prompt_tokens"] == 12
    assert completion["usage"]["completion_tokens"] == 3
    assert acc.to_anthropic("m")["id"] == "msg_llmproxy"


def test_latest_usage_wins_and_first_start_and_finish_count() -> None:
    acc = accumulate(
        [
            MessageStart("first", "m1"),
            UsageUpdate(Usage(input_tokens=1)),
            MessageStart("second", "m2"),
            UsageUpdate(Usage(input_tokens=5, output_tokens=3)),
            Finish(StopReason.MAX_TOKENS),
            Finish(StopReason.END_TURN),
        ]
    )
    snap = acc.snapshot()
    assert (snap.id, snap.model) == ("first", "m1")
    assert snap.usage == Usage(input_tokens=5, output_tokens=3)
    assert snap.finish == Finish(StopReason.MAX_TOKENS)
    assert snap.finished


def test_snapshot_mid_stream() -> None:
    acc = MessageAccumulator()
    acc.extend(
        [
            MessageStart("u", "m"),
            ReasoningDelta("plan"),
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallStart(0, "c0", "f"),
            ToolCallDelta(0, '{"x": 1}'),
            ToolCallStart(1, "c1", "g"),
            ToolCallDelta(1, '{"y": '),
        ]
    )
    snap = acc.snapshot()
    assert snap == PartialMessage(
        id="u",
        model="m",
        reasoning="plan",
        text="Hello",
        tool_calls=(ToolCallSnapshot(0, "c0", "f", '{"x": 1}'),),
        open_tool_call=ToolCallSnapshot(1, "c1", "g", '{"y": '),
        usage=Usage(output_tokens=(4 + 5 + 8 + 6 + 3) // 4),
        finish=None,
    )
    assert not snap.finished
    assert acc.text_so_far == "Hello"
    assert acc.reasoning_so_far == "plan"
    # Any other content closes the open call; so does Finish.
    acc.add(TextDelta("!"))
    assert acc.open_tool_call is None
    assert [c.index for c in acc.tool_calls_complete] == [0, 1]


def test_arguments_before_their_start_are_kept() -> None:
    acc = accumulate(
        [ToolCallDelta(0, '{"a"'), ToolCallStart(0, "c", "f"), ToolCallDelta(0, ": 1}")]
    )
    assert acc.to_anthropic("m")["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {"a": 1}}
    ]


def test_refusals_and_custom_calls_render_in_every_api() -> None:
    """A refusal is a refusal where the API has one (chat, Responses) and text where it has not
    (Anthropic); a custom call is a custom call for Responses and a function call with
    `{"input": ...}` elsewhere. Every rendering parses with the SDK's model."""
    acc = accumulate(
        [
            MessageStart("chatcmpl-r1", "m"),
            ReasoningDelta("Think."),
            RefusalDelta("I can't "),
            RefusalDelta("help."),
            CustomToolCall(0, "call_p", "apply_patch", '*** Begin "x"'),
            ToolCallStart(1, "call_w", "get_weather"),
            ToolCallDelta(1, '{"city":"Paris"}'),
            Finish(StopReason.END_TURN),
            UsageUpdate(Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2)),
        ]
    )
    chat = ChatCompletion.model_validate(acc.to_openai("m", created=0)).choices[0]
    assert (chat.message.content, chat.message.refusal) == (None, "I can't help.")
    assert chat.finish_reason == "tool_calls"
    calls = [(c.function.name, c.function.arguments) for c in chat.message.tool_calls or []]  # type: ignore[union-attr]
    assert calls == [
        ("apply_patch", orjson.dumps({"input": '*** Begin "x"'}).decode()),
        ("get_weather", '{"city":"Paris"}'),
    ]

    message = Message.model_validate(acc.to_anthropic("m"))
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[1].text == "I can't help."  # type: ignore[union-attr]
    assert message.content[2].input == {"input": '*** Begin "x"'}  # type: ignore[union-attr]

    request = {"instructions": "Be brief.", "tools": [{"type": "function", "name": "x"}]}
    response = Response.model_validate(acc.to_responses("m", request, response_id="resp_r1"))
    assert [i.type for i in response.output] == [
        "reasoning",
        "message",
        "custom_tool_call",
        "function_call",
    ]
    refusal = response.output[1].content[0]  # type: ignore[union-attr]
    assert (refusal.type, refusal.refusal) == ("refusal", "I can't help.")  # type: ignore[union-attr]
    custom = response.output[2]
    assert (custom.name, custom.input, custom.call_id) == ("apply_patch", '*** Begin "x"', "call_p")  # type: ignore[union-attr]
    assert response.output[3].arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert response.status == "completed" and response.instructions == "Be brief."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.output_tokens_details.reasoning_tokens == 2


def test_a_limit_is_an_incomplete_responses_object() -> None:
    acc = accumulate([TextDelta("Hel"), Finish(StopReason.MAX_TOKENS)])
    response = Response.model_validate(acc.to_responses("m", {}, response_id="resp_x"))
    assert response.status == "incomplete" and response.output_text == "Hel"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
