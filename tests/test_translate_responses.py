"""Response, stop-reason, usage and error-body translation, validated with the official SDKs.

Goldens: tests/data/golden/response.*.json (`LLMPROXY_UPDATE_GOLDEN=1` rewrites `expected`).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from proxy.classify import classify
from proxy.client_dialects import ANTHROPIC, OPENAI
from proxy.exchange import pair
from proxy.translate.common import RAW_ARGUMENTS_KEY
from proxy.translate.errors_wire import (
    anthropic_error_type_for_status,
    openai_error_type_for_status,
)
from proxy.translate.reasons import (
    anthropic_stop_to_stop,
    openai_finish_to_stop,
    stop_to_anthropic,
    stop_to_openai_finish,
    usage_from_anthropic,
    usage_from_openai,
    usage_to_anthropic,
    usage_to_openai,
)
from proxy.translate.replies import passthrough_response
from proxy.types import ClientAPI, JSONObject, ProviderFormat, StopReason, UpstreamReply, Usage

GOLDEN = Path(__file__).parent / "data" / "golden"
UPDATE = os.environ.get("LLMPROXY_UPDATE_GOLDEN") == "1"
CREATED = 1772000000


def check_pair(path: Path, translate: Any) -> Any:
    case = orjson.loads(path.read_bytes())
    before = copy.deepcopy(case["input"])
    actual = translate(case["input"], case["model"])
    assert case["input"] == before, "translators must not modify their input"
    if UPDATE:
        case["expected"] = actual
        path.write_bytes(orjson.dumps(case, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        assert actual == case["expected"]
    return actual


def openai_to_anthropic_response(body: JSONObject, model: str) -> JSONObject:
    """What an Anthropic client gets from an OpenAI-format provider's whole reply."""
    translators = pair(ClientAPI.ANTHROPIC, ProviderFormat.OPENAI)
    assert translators is not None
    return translators.answer(UpstreamReply(body), model, {}).body


def anthropic_to_openai_response(
    body: JSONObject, model: str, *, created: int | None = None
) -> JSONObject:
    """What an OpenAI client gets from an Anthropic provider's whole reply."""
    translators = pair(ClientAPI.OPENAI, ProviderFormat.ANTHROPIC)
    assert translators is not None
    return translators.answer(UpstreamReply(body), model, {}, created=created).body


def to_anthropic(body: Any, model: str) -> Any:
    return openai_to_anthropic_response(body, model)


def to_openai(body: Any, model: str) -> Any:
    return anthropic_to_openai_response(body, model, created=CREATED)


O2A = sorted(GOLDEN.glob("response.openai_to_anthropic.*.json"))
A2O = sorted(GOLDEN.glob("response.anthropic_to_openai.*.json"))


def test_there_are_response_pairs() -> None:
    assert len(O2A) >= 6 and len(A2O) >= 3


@pytest.mark.parametrize("path", O2A, ids=lambda p: p.stem.split(".")[-1])
def test_openai_to_anthropic_response_pair(path: Path) -> None:
    out = check_pair(path, to_anthropic)
    message = anthropic.types.Message.model_validate(out)
    assert message.model == orjson.loads(path.read_bytes())["model"]
    # Reasoning never leaks into visible text.
    visible = "".join(b.text for b in message.content if b.type == "text")
    for block in message.content:
        if block.type == "thinking":
            assert block.thinking not in visible
            assert "<think>" not in visible


@pytest.mark.parametrize("path", A2O, ids=lambda p: p.stem.split(".")[-1])
def test_anthropic_to_openai_response_pair(path: Path) -> None:
    out = check_pair(path, to_openai)
    completion = openai.types.chat.ChatCompletion.model_validate(out)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"


def test_minimax_tool_use_becomes_openai_tool_calls() -> None:
    case = orjson.loads(
        (GOLDEN / "response.anthropic_to_openai.minimax_tool_use.json").read_bytes()
    )
    completion = openai.types.chat.ChatCompletion.model_validate(to_openai(case["input"], "m"))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type) for c in calls] == [("toolu_01A", "function"), ("toolu_01B", "function")]
    assert [orjson.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris"},
        {"city": "Rome", "unit": "c"},
    ]
    assert choice.message.content == "Checking both cities."
    extra = choice.message.model_extra or {}
    assert extra["reasoning_content"] == "Two cities, two calls."
    assert completion.usage is not None and completion.usage.prompt_tokens == 420


def test_response_ids_are_derived_from_upstream_ids() -> None:
    anthropic_out = openai_to_anthropic_response(
        {"id": "chatcmpl-abc", "choices": [{"message": {"content": "hi"}}]}, "m"
    )
    assert anthropic_out["id"] == "msg_abc"
    openai_out = anthropic_to_openai_response({"id": "msg_xyz", "content": []}, "m", created=1)
    assert openai_out["id"] == "chatcmpl-xyz"
    fresh = openai_to_anthropic_response({"choices": []}, "m")
    assert fresh["id"].startswith("msg_") and len(fresh["id"]) > 10
    anthropic.types.Message.model_validate(fresh)


def test_tool_call_without_id_gets_a_stable_one() -> None:
    body = {
        "id": "chatcmpl-q",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            }
        ],
    }
    out = openai_to_anthropic_response(body, "m")
    # The id the stream decoder makes up for the same call (`stream_openai`), whole or streamed.
    expected = {"type": "tool_use", "id": "call_chatcmpl-q_0", "name": "f", "input": {}}
    assert out["content"] == [expected]


def test_raw_arguments_unwrap_in_anthropic_to_openai_response() -> None:
    body = {
        "id": "msg_1",
        "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {RAW_ARGUMENTS_KEY: "{bad"}}
        ],
        "stop_reason": "tool_use",
    }
    out = anthropic_to_openai_response(body, "m", created=1)
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{bad"


def test_passthrough_response_sets_only_the_model() -> None:
    body = {"id": "msg_1", "model": "upstream-name", "content": [], "extra": {"x": 1}}
    assert passthrough_response(body, "client-name") == {**body, "model": "client-name"}
    assert body["model"] == "upstream-name"


# --- Stop reasons ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", StopReason.END_TURN),
        ("length", StopReason.MAX_TOKENS),
        ("tool_calls", StopReason.TOOL_USE),
        ("function_call", StopReason.TOOL_USE),
        ("content_filter", StopReason.CONTENT_FILTER),
        (None, StopReason.END_TURN),
        ("something_new", StopReason.END_TURN),
    ],
)
def test_openai_finish_reasons(finish: str | None, stop: StopReason) -> None:
    assert openai_finish_to_stop(finish) is stop


@pytest.mark.parametrize(
    ("reason", "stop"),
    [
        ("end_turn", StopReason.END_TURN),
        ("max_tokens", StopReason.MAX_TOKENS),
        ("tool_use", StopReason.TOOL_USE),
        ("stop_sequence", StopReason.STOP_SEQUENCE),
        ("refusal", StopReason.CONTENT_FILTER),
        ("pause_turn", StopReason.PAUSE_TURN),
        ("model_context_window_exceeded", StopReason.MAX_TOKENS),
        (None, StopReason.END_TURN),
    ],
)
def test_anthropic_stop_reasons(reason: str | None, stop: StopReason) -> None:
    assert anthropic_stop_to_stop(reason) is stop


def test_every_stop_reason_has_a_finish_reason_in_both_dialects() -> None:
    openai_finishes = {"stop", "length", "tool_calls", "content_filter", "function_call"}
    for stop in StopReason:
        assert stop_to_openai_finish(stop) in openai_finishes
        assert anthropic_stop_to_stop(stop_to_anthropic(stop)) is stop
    assert stop_to_openai_finish(StopReason.STOP_SEQUENCE) == "stop"
    assert stop_to_openai_finish(StopReason.PAUSE_TURN) == "stop"
    assert stop_to_anthropic(StopReason.CONTENT_FILTER) == "refusal"


# --- Usage -------------------------------------------------------------------------------------


def test_openai_prompt_tokens_include_cached_tokens_anthropic_input_tokens_do_not() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 40,
            "total_tokens": 1240,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 25},
        }
    )
    assert usage == Usage(200, 40, 1000, 0, 25)
    assert usage_to_anthropic(usage) == {
        "input_tokens": 200,
        "output_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1000,
        "output_tokens_details": {"thinking_tokens": 25},
    }


def test_anthropic_cache_reads_and_writes_are_part_of_openai_prompt_tokens() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 20,
            "output_tokens": 60,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 300,
        }
    )
    assert usage_to_openai(usage) == {
        "prompt_tokens": 420,
        "completion_tokens": 60,
        "total_tokens": 480,
        "prompt_tokens_details": {"cached_tokens": 300},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_usage_round_trips_through_both_dialects() -> None:
    usage = Usage(123, 45, 67, 0, 8)
    assert usage_from_openai(usage_to_openai(usage)) == usage
    assert usage_from_anthropic(usage_to_anthropic(usage)) == usage


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"prompt_tokens": None, "completion_tokens": "7"},
        {"prompt_tokens": -3, "prompt_tokens_details": None},
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}},
    ],
)
def test_odd_openai_usage_never_goes_negative(raw: Any) -> None:
    usage = usage_from_openai(raw)
    assert min(usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) >= 0


def test_kimi_top_level_cached_tokens() -> None:
    usage = usage_from_openai({"prompt_tokens": 100, "completion_tokens": 1, "cached_tokens": 60})
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (40, 60)


# --- Error bodies ------------------------------------------------------------------------------

STATUSES = [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504, 529, 418, 599]


@pytest.mark.parametrize("status", STATUSES)
def test_anthropic_error_bodies_validate_with_the_sdk(status: int) -> None:
    body = ANTHROPIC.error_body(status, "nope")
    if body["error"]["type"] != "request_too_large":  # documented, not in this SDK's union
        anthropic.types.ErrorResponse.model_validate(body)
    assert body["type"] == "error" and body["error"]["message"] == "nope"


def test_anthropic_error_types_for_status() -> None:
    assert [
        anthropic_error_type_for_status(s) for s in (400, 401, 403, 404, 413, 429, 500, 529)
    ] == [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    ]


def test_openai_error_types_for_status() -> None:
    assert openai_error_type_for_status(400) == ("invalid_request_error", None)
    assert openai_error_type_for_status(401) == ("authentication_error", "invalid_api_key")
    assert openai_error_type_for_status(429) == ("rate_limit_error", "rate_limit_exceeded")
    assert openai_error_type_for_status(500) == ("server_error", None)
    assert OPENAI.error_body(400, "bad", param="messages") == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "max_tokens too large", "type": "invalid_request_error"}}, None),
        ({"error": {"code": "1113", "message": "余额不足"}}, "余额不足"),  # Z.ai
        ({"error": "plain string"}, "plain string"),
        ({"object": "error", "message": "vllm says no", "code": 400}, "vllm says no"),
        ({"detail": "fastapi says no"}, "fastapi says no"),
        ({"detail": [{"msg": "field required"}, {"msg": "bad type"}]}, "field required; bad type"),
        (b"upstream text", "upstream text"),
        ("", "upstream returned HTTP 400"),
        (None, "upstream returned HTTP 400"),
        ({"unexpected": True}, "upstream returned HTTP 400"),
    ],
)
def test_upstream_error_messages_are_found(body: Any, message: str | None) -> None:
    """The classifier reads the message; an Anthropic client gets it in an Anthropic body."""
    expected = message or "max_tokens too large"
    if isinstance(body, dict):
        raw = orjson.dumps(body)
    else:
        raw = body if isinstance(body, bytes) else (body or "").encode()
    found = classify(400, raw, {})
    assert found.message == expected
    converted = ANTHROPIC.upstream_error_body(400, found.body, found.message, ProviderFormat.OPENAI)
    assert converted == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": expected},
    }
    anthropic.types.ErrorResponse.model_validate(converted)


def test_anthropic_error_becomes_openai_error_by_type() -> None:
    def anthropic_error_to_openai(status: int, body: Any) -> JSONObject:
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        found = classify(status, raw, {})
        return OPENAI.upstream_error_body(
            status, found.body, found.message, ProviderFormat.ANTHROPIC
        )

    body = {"type": "error", "error": {"type": "billing_error", "message": "credit too low"}}
    assert anthropic_error_to_openai(400, body) == {
        "error": {
            "message": "credit too low",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert anthropic_error_to_openai(529, overloaded)["error"]["type"] == "server_error"
    assert anthropic_error_to_openai(429, "slow down")["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
