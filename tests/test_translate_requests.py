"""Request translation, checked against golden payloads and the SDKs' own parameter types.

Goldens live in tests/data/golden/. `LLMPROXY_UPDATE_GOLDEN=1 pytest tests/test_translate_*.py`
rewrites them from the current translators; review the diff before committing it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from anthropic.types import message_create_params as anthropic_params
from openai.types.chat import completion_create_params as openai_params

from proxy.capabilities import clamp_max_tokens
from proxy.errors import ClientRequestError
from proxy.translate.common import RAW_ARGUMENTS_KEY, TOOL_ERROR_PREFIX
from proxy.translate.dropped import (
    DROPPED_ANTHROPIC_TO_OPENAI,
    DROPPED_OPENAI_TO_ANTHROPIC,
    TRANSLATED_ANTHROPIC_REQUEST,
    TRANSLATED_OPENAI_REQUEST,
    unknown_request_fields,
)
from proxy.translate.requests import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_openai_request,
    drop_unsigned_thinking,
    openai_to_anthropic_request,
    passthrough_request,
)
from proxy.types import ProviderFormat

DATA = Path(__file__).parent / "data"
CAPTURES = DATA / "captures"
GOLDEN = DATA / "golden"
UPDATE = os.environ.get("LLMPROXY_UPDATE_GOLDEN") == "1"


def check_golden(path: Path, actual: Any) -> None:
    if UPDATE:
        path.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
        return
    assert path.exists(), f"{path.name} missing: run with LLMPROXY_UPDATE_GOLDEN=1"
    assert actual == orjson.loads(path.read_bytes())


def check_pair(path: Path, translate: Any) -> Any:
    """A hand-written pair file: {description, model, input, expected}."""
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


def drain(value: Any) -> Any:
    """Materialise pydantic's lazy iterators so that every nested item is validated."""
    if isinstance(value, dict):
        return {k: drain(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, Iterable):
        return [drain(v) for v in value]
    return value


OPENAI_REQUEST = pydantic.TypeAdapter(openai_params.CompletionCreateParams)
ANTHROPIC_REQUEST = pydantic.TypeAdapter(anthropic_params.MessageCreateParams)


def without(payload: Any, keys: set[str]) -> Any:
    if isinstance(payload, dict):
        return {k: without(v, keys) for k, v in payload.items() if k not in keys}
    if isinstance(payload, list):
        return [without(v, keys) for v in payload]
    return payload


def assert_valid_openai_request(body: Any) -> None:
    """Valid per the openai SDK's param types, and every key is one the SDK knows.

    The TypedDicts ignore unknown keys, so comparing the validated copy with the original finds
    misspelt or invented keys. `reasoning_content` is the one deliberate non-standard key.
    """
    validated = drain(OPENAI_REQUEST.validate_python(body))
    assert validated == without(body, {"reasoning_content"})


def assert_valid_anthropic_request(body: Any) -> None:
    validated = drain(ANTHROPIC_REQUEST.validate_python(body))
    # temperature/top_p are accepted by the API and by Anthropic-format providers, but this SDK
    # version no longer lists them.
    assert validated == {k: v for k, v in body.items() if k not in {"temperature", "top_p"}}


def load_capture(name: str) -> Any:
    return orjson.loads((CAPTURES / name).read_bytes())


CLAUDE_CODE_MESSAGES = sorted(
    p.name
    for p in CAPTURES.glob("claude-code-*.json")
    if load_capture(p.name)["path"] == "/v1/messages"
)


def python_client_requests() -> list[tuple[str, Any]]:
    capture = load_capture("python-clients_requests.json")
    return [(r["path"], r["body"]) for r in capture["requests"]]


# --- Claude Code captures -> OpenAI ------------------------------------------------------------


def test_there_are_claude_code_message_captures() -> None:
    assert len(CLAUDE_CODE_MESSAGES) >= 9


@pytest.mark.parametrize("name", CLAUDE_CODE_MESSAGES)
def test_claude_code_capture_to_openai_matches_golden(name: str) -> None:
    body = load_capture(name)["body"]
    before = copy.deepcopy(body)
    out = anthropic_to_openai_request(body, "glm-5")
    assert body == before
    check_golden(GOLDEN / f"{Path(name).stem}.openai.json", out)


@pytest.mark.parametrize("name", CLAUDE_CODE_MESSAGES)
def test_claude_code_capture_to_openai_is_valid_and_faithful(name: str) -> None:
    body = load_capture(name)["body"]
    out = anthropic_to_openai_request(body, "glm-5")
    assert_valid_openai_request(out)
    text = orjson.dumps(out).decode()
    assert "cache_control" not in text
    assert "x-anthropic-billing-header" not in text
    assert "defer_loading" not in text
    assert "json-schema.org" not in text
    assert "safeguards" not in text and "<work>/home" not in text
    assert out["model"] == "glm-5"

    messages = out["messages"]
    assert messages[0]["role"] == "system"
    assert [m["role"] for m in messages].count("system") == 1
    for message in body["messages"]:
        if message["role"] == "system":  # hoisted, in full, into the one system message
            content = message["content"]
            hoisted = content if isinstance(content, str) else content[0]["text"]
            assert hoisted in messages[0]["content"]

    tool_uses = [
        b
        for m in body["messages"]
        if m["role"] == "assistant"
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    calls = [c for m in messages for c in m.get("tool_calls", [])]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        (t["id"], t["name"]) for t in tool_uses
    ]
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        t["input"] for t in tool_uses
    ]
    results = [m for m in messages if m["role"] == "tool"]
    assert [r["tool_call_id"] for r in results] == [t["id"] for t in tool_uses]

    custom_tools = [t for t in body["tools"] if t.get("type") in (None, "custom")]
    assert [t["function"]["name"] for t in out.get("tools", [])] == [
        t["name"] for t in custom_tools
    ]
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["max_tokens"] == body["max_tokens"]


def test_claude_code_mid_conversation_system_message_is_hoisted() -> None:
    body = load_capture("claude-code-2.1.332_print-mode_first-request.json")["body"]
    assert body["messages"][-1]["role"] == "system"
    out = anthropic_to_openai_request(body, "glm-5")
    assert out["messages"][-1]["role"] == "user"
    assert out["messages"][0]["content"].endswith(body["messages"][-1]["content"][0]["text"])
    # The billing block is gone; the real system prompt starts the message.
    assert out["messages"][0]["content"].startswith("You are a Claude agent")


def test_claude_code_title_generation_maps_structured_output_and_no_reasoning() -> None:
    body = load_capture("claude-code-2.1.197_interactive_title-generation.json")["body"]
    out = anthropic_to_openai_request(body, "glm-5")
    assert "reasoning_effort" not in out  # thinking disabled wins over effort=high
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": body["output_config"]["format"]["schema"]},
    }


def test_claude_code_haiku_budget_maps_to_high_effort() -> None:
    body = load_capture("claude-code-2.1.197_print-mode_model-haiku.json")["body"]
    assert body["thinking"] == {"budget_tokens": 31999, "type": "enabled"}
    assert anthropic_to_openai_request(body, "glm-5")["reasoning_effort"] == "high"


def test_max_output_tokens_caps_claude_codes_large_max_tokens() -> None:
    body = load_capture("claude-code-2.1.332_print-mode_first-request.json")["body"]
    assert body["max_tokens"] == 128000
    out = clamp_max_tokens(
        anthropic_to_openai_request(body, "deepseek-chat"), ProviderFormat.OPENAI, 8192
    )
    assert out["max_tokens"] == 8192


# --- Every captured field is accounted for -----------------------------------------------------


def test_translated_and_dropped_sets_do_not_overlap() -> None:
    assert not TRANSLATED_ANTHROPIC_REQUEST & DROPPED_ANTHROPIC_TO_OPENAI
    assert not TRANSLATED_OPENAI_REQUEST & DROPPED_OPENAI_TO_ANTHROPIC


def test_every_captured_top_level_field_is_translated_or_deliberately_dropped() -> None:
    seen: list[tuple[str, Any]] = [
        (load_capture(p.name)["path"], load_capture(p.name)["body"])
        for p in CAPTURES.glob("claude-code-*.json")
    ]
    seen += python_client_requests()
    checked = 0
    for path, body in seen:
        if path.startswith("/v1/messages"):
            assert unknown_request_fields(body, "anthropic", "openai") == frozenset(), path
            checked += 1
        elif path == "/v1/chat/completions":
            assert unknown_request_fields(body, "openai", "anthropic") == frozenset(), path
            checked += 1
        # /v1/responses (Codex) is translated by another module.
    assert checked >= 15


def test_unknown_fields_are_reported_and_same_format_loses_nothing() -> None:
    body = {"model": "m", "messages": [], "brand_new_field": 1}
    assert unknown_request_fields(body, "anthropic", "openai") == {"brand_new_field"}
    assert unknown_request_fields(body, "openai", "anthropic") == {"brand_new_field"}
    assert unknown_request_fields(body, "anthropic", "anthropic") == frozenset()


# --- Python client captures --------------------------------------------------------------------


# The captured /v1/responses requests belong to the Responses translator's tests.
CHAT_OR_MESSAGES = [
    index
    for index, (path, _) in enumerate(python_client_requests())
    if path in ("/v1/chat/completions", "/v1/messages")
]


@pytest.mark.parametrize("index", CHAT_OR_MESSAGES)
def test_python_client_capture_translates_to_the_other_format(index: int) -> None:
    path, body = python_client_requests()[index]
    golden = f"python-clients_requests.{index}"
    if path == "/v1/chat/completions":
        out = openai_to_anthropic_request(body, "MiniMax-M2.5")
        assert_valid_anthropic_request(out)
        check_golden(GOLDEN / f"{golden}.anthropic.json", out)
    else:
        out = anthropic_to_openai_request(body, "glm-5")
        assert_valid_openai_request(out)
        check_golden(GOLDEN / f"{golden}.openai.json", out)


# --- Hand-written pairs ------------------------------------------------------------------------

O2A_PAIRS = sorted(GOLDEN.glob("request.openai_to_anthropic.*.json"))
A2O_PAIRS = sorted(GOLDEN.glob("request.anthropic_to_openai.*.json"))


@pytest.mark.parametrize("path", O2A_PAIRS, ids=lambda p: p.stem.split(".")[-1])
def test_openai_to_anthropic_pair(path: Path) -> None:
    out = check_pair(path, openai_to_anthropic_request)
    assert_valid_anthropic_request(out)


@pytest.mark.parametrize("path", A2O_PAIRS, ids=lambda p: p.stem.split(".")[-1])
def test_anthropic_to_openai_pair(path: Path) -> None:
    out = check_pair(path, anthropic_to_openai_request)
    assert_valid_openai_request(out)


def test_there_are_hand_written_pairs() -> None:
    assert len(O2A_PAIRS) >= 8 and len(A2O_PAIRS) >= 3


def test_minimax_tools_get_input_schema() -> None:
    case = orjson.loads((GOLDEN / "request.openai_to_anthropic.minimax_tools.json").read_bytes())
    out = openai_to_anthropic_request(case["input"], "MiniMax-M2.5")
    weather = case["input"]["tools"][0]["function"]
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": weather["description"],
            "input_schema": weather["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "auto"}
    assert out["system"] == "You are terse."


# --- Behaviours worth a name -------------------------------------------------------------------


def test_passthrough_replaces_only_the_model_and_keeps_unknown_fields() -> None:
    body = {
        "model": "claude-x",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "cache_control": {"type": "ephemeral"},
        "context_management": {"edits": []},
        "brand_new": [1, 2],
    }
    before = copy.deepcopy(body)
    out = passthrough_request(body, "MiniMax-M2.5")
    assert body == before
    assert out == {**before, "model": "MiniMax-M2.5"}


def test_invalid_arguments_survive_a_round_trip_byte_for_byte() -> None:
    raw = '{"city": "Par'
    openai_body = {
        "model": "x",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": raw}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "bad"},
        ],
    }
    anthropic_body = openai_to_anthropic_request(openai_body, "m")
    assert anthropic_body["messages"][1]["content"][0]["input"] == {RAW_ARGUMENTS_KEY: raw}
    back = anthropic_to_openai_request(anthropic_body, "m")
    assert back["messages"][1]["tool_calls"][0]["function"]["arguments"] == raw


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", {}),
        ("  ", {}),
        (None, {}),
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", {RAW_ARGUMENTS_KEY: "[1, 2]"}),
        ('"text"', {RAW_ARGUMENTS_KEY: '"text"'}),
        ("{oops", {RAW_ARGUMENTS_KEY: "{oops"}),
    ],
)
def test_tool_arguments_parse_decisions(arguments: Any, expected: Any) -> None:
    body = {
        "model": "x",
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": arguments},
                    }
                ],
            }
        ],
    }
    out = openai_to_anthropic_request(body, "m")
    assert out["messages"][0]["content"][0]["input"] == expected


def test_tool_error_is_a_prefix_for_openai() -> None:
    body = {
        "model": "x",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}
                ],
            }
        ],
    }
    out = anthropic_to_openai_request(body, "m")
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t", "content": TOOL_ERROR_PREFIX + "boom"}
    ]


def test_default_max_tokens_when_the_openai_client_gave_none() -> None:
    out = openai_to_anthropic_request({"messages": [{"role": "user", "content": "hi"}]}, "m")
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS
    capped = clamp_max_tokens(out, ProviderFormat.ANTHROPIC, 1000)
    assert capped["max_tokens"] == 1000


@pytest.mark.parametrize(
    ("temperature", "expected"), [(0, 0.0), (0.5, 0.5), (1, 1.0), (1.7, 1.0), (2, 1.0)]
)
def test_temperature_is_clamped_to_anthropics_range(temperature: float, expected: float) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": temperature}
    assert openai_to_anthropic_request(body, "m")["temperature"] == expected


def test_thinking_budget_stays_below_a_small_max_tokens() -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high",
        "max_completion_tokens": 6000,
    }
    out = openai_to_anthropic_request(body, "m")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert out["max_tokens"] == 6000
    off = openai_to_anthropic_request({**body, "reasoning_effort": "none"}, "m")
    assert off["thinking"] == {"type": "disabled"}


def test_stop_string_becomes_a_list() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stop": "END"}
    assert openai_to_anthropic_request(body, "m")["stop_sequences"] == ["END"]


def test_top_p_is_kept_only_without_temperature() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.9}
    assert openai_to_anthropic_request(body, "m")["top_p"] == 0.9
    both = openai_to_anthropic_request({**body, "temperature": 0.5}, "m")
    assert "top_p" not in both and both["temperature"] == 0.5


def test_allowed_tools_choice_keeps_only_the_allowed_tools() -> None:
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("a", "b", "c")
    ]
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "required",
                "tools": [{"type": "function", "function": {"name": "b"}}],
            },
        },
    }
    out = openai_to_anthropic_request(body, "m")
    assert [t["name"] for t in out["tools"]] == ["b"]
    assert out["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_anthropic_tool_choice_mapping(choice: Any, expected: Any) -> None:
    body = {
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": choice,
    }
    out = anthropic_to_openai_request(body, "m")
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_tool_choice_is_not_sent_without_tools() -> None:
    body = {
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "any"},
    }
    out = anthropic_to_openai_request(body, "m")
    assert "tools" not in out and "tool_choice" not in out


def test_drop_unsigned_thinking_removes_only_unsigned_blocks() -> None:
    signed = {"type": "thinking", "thinking": "a", "signature": "sig"}
    unsigned = {"type": "thinking", "thinking": "b", "signature": ""}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [unsigned, {"type": "text", "text": "x"}]},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": [signed, {"type": "text", "text": "y"}]},
        ],
    }
    out = drop_unsigned_thinking(body)
    assert out["messages"][1]["content"] == [{"type": "text", "text": "x"}]
    assert out["messages"][3] is body["messages"][3]
    clean = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    assert drop_unsigned_thinking(clean) is clean


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "messages": "hi"},
        {"model": "m", "messages": ["hi"]},
        {"model": "m", "messages": [{"role": "robot", "content": "hi"}]},
    ],
)
def test_malformed_requests_are_client_errors(body: Any) -> None:
    with pytest.raises(ClientRequestError):
        anthropic_to_openai_request(body, "m")
    with pytest.raises(ClientRequestError):
        openai_to_anthropic_request(body, "m")


def test_openai_parts_with_cache_control_keep_their_breakpoints() -> None:
    mark = {"type": "ephemeral"}
    body = {
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "Long rules.", "cache_control": mark}],
            },
            {"role": "system", "content": "More rules."},
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": mark}]},
        ]
    }
    out = openai_to_anthropic_request(body, "m")
    assert out["system"] == [
        {"type": "text", "text": "Long rules.", "cache_control": mark},
        {"type": "text", "text": "More rules."},
    ]
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": mark}]}
    ]
    assert_valid_anthropic_request(out)


def test_a_forced_tool_wins_over_reasoning() -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "medium",
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
    }
    out = openai_to_anthropic_request(body, "m")
    assert "thinking" not in out and out["tool_choice"] == {"type": "any"}
    auto = openai_to_anthropic_request({**body, "tool_choice": "auto"}, "m")
    assert auto["thinking"] == {"type": "enabled", "budget_tokens": 8192}


def test_reasoning_history_can_be_left_out_for_strict_providers() -> None:
    body = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "a"},
                ],
            },
        ],
    }
    assert anthropic_to_openai_request(body, "m")["messages"][1]["reasoning_content"] == "hmm"
    strict = anthropic_to_openai_request(body, "m", reasoning_history=False)
    assert strict["messages"][1] == {"role": "assistant", "content": "a"}


def test_a_tool_schema_loses_its_dialect_tag_and_nothing_else() -> None:
    """Strict OpenAI-format servers reject `$schema`; a schema without one goes as it is."""
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"name": "read", "input_schema": {"$schema": "https://json-schema.org/x", **schema}},
            {"name": "write", "input_schema": schema},
        ],
    }
    sent = copy.deepcopy(body)
    tools = anthropic_to_openai_request(body, "gpt")["tools"]
    assert [t["function"]["parameters"] for t in tools] == [schema, schema]
    assert tools[1]["function"]["parameters"] is schema  # passed as it is, not copied
    assert body == sent  # the client's body is left as it came
