"""`llmproxy e2e` judges like a strict client (issue 11): the wire bytes as the official SDKs
read them, not the daemon's own lenient decoders."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.daemon_client import StreamReader, answer_from_events
from proxy.e2e import judge_tool_call, tool_call_problem
from proxy.e2e_judge import wire_problem
from proxy.types import ClientAPI


def openai_stream(finish: str, *extra: dict[str, Any]) -> bytes:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }

    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]}),
        *extra,
        chunk({}, finish),
    ]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def anthropic_stream(stop: str, delta_type: str = "input_json_delta") -> bytes:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "m",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": delta_type, "partial_json": '{"city":"Paris"}', "text": "x"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(
        f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n" for name, data in events
    )


def problem(client: ClientAPI, raw: bytes, *, tools: bool = True) -> str | None:
    return wire_problem(client, raw, stream=True, tools=tools, tool_check=tool_call_problem)


def test_a_stop_after_tool_calls_fails_the_tool_test_though_the_lenient_decoder_forgives_it() -> (
    None
):
    raw = openai_stream("stop")
    reader = StreamReader(ClientAPI.OPENAI)
    lenient = answer_from_events(reader.feed(raw) + reader.close())
    assert judge_tool_call(lenient) is None  # the daemon's decoder calls it tool use
    found = problem(ClientAPI.OPENAI, raw)
    assert found is not None and "stop reason 'stop'" in found
    assert problem(ClientAPI.OPENAI, openai_stream("tool_calls")) is None


def test_an_anthropic_tool_call_needs_stop_reason_tool_use() -> None:
    assert problem(ClientAPI.ANTHROPIC, anthropic_stream("tool_use")) is None
    found = problem(ClientAPI.ANTHROPIC, anthropic_stream("end_turn"))
    assert found is not None and "'end_turn'" in found


@pytest.mark.parametrize(
    ("client", "raw", "expected"),
    [
        (
            ClientAPI.OPENAI,
            openai_stream("tool_calls")[: -len(b"data: [DONE]\n\n")],
            "does not end with [DONE]",
        ),
        (
            ClientAPI.OPENAI,
            openai_stream("tool_calls", {"error": {"message": "boom"}}),
            "error chunk: boom",
        ),
        (
            ClientAPI.OPENAI,
            openai_stream(
                "tool_calls",
                {
                    "id": "c2",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
                },
            ),
            "the id changed",
        ),
        (
            ClientAPI.ANTHROPIC,
            anthropic_stream("tool_use", delta_type="text_delta"),
            "a text_delta in a tool_use block",
        ),
        (
            ClientAPI.ANTHROPIC,
            anthropic_stream("tool_use").replace(b"event: message_stop", b"event: error"),
            "error event",
        ),
    ],
    ids=["no-done", "error-chunk", "id-changed", "wrong-delta", "error-event"],
)
def test_what_a_strict_client_rejects_fails(client: ClientAPI, raw: bytes, expected: str) -> None:
    found = problem(client, raw)
    assert found is not None and expected in found


def test_non_streaming_answers_are_checked_too() -> None:
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
            }
        ],
    }
    found = wire_problem(
        ClientAPI.OPENAI,
        orjson.dumps(completion),
        stream=False,
        tools=True,
        tool_check=tool_call_problem,
    )
    assert found is not None and "stop reason 'stop'" in found
    completion["choices"][0]["finish_reason"] = "tool_calls"  # type: ignore[index]
    assert (
        wire_problem(
            ClientAPI.OPENAI,
            orjson.dumps(completion),
            stream=False,
            tools=True,
            tool_check=tool_call_problem,
        )
        is None
    )
