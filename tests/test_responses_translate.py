"""The pure Responses translators: requests both ways, the ChatGPT backend's rules, whole
replies to and from Responses through the neutral events, and restoring namespaced and custom
calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.errors import ClientRequestError
from proxy.exchange import pair
from proxy.translate.responses_api import (
    DEFAULT_INSTRUCTIONS,
    anthropic_to_codex_request,
    chat_to_responses_request,
    codex_backend_request,
    responses_to_anthropic_request,
    responses_to_chat_request,
    validate_responses_request,
)
from proxy.translate.responses_dropped import (
    DROPPED_BY_CODEX_BACKEND,
    unknown_chat_fields,
    unknown_responses_fields,
)
from proxy.translate.responses_response import usage_from_responses, usage_to_responses
from proxy.translate.stream_responses import ResponsesStreamDecoder
from proxy.types import ClientAPI, ProviderFormat, UpstreamFault, UpstreamReply, Usage

CAPTURES = Path(__file__).parent / "data" / "captures"
CODEX_CAPTURES = sorted(CAPTURES.glob("codex-*.json"))


def body_of(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(path.read_bytes())["body"]
    return body


@pytest.mark.parametrize("path", CODEX_CAPTURES, ids=lambda p: p.stem)
def test_every_field_codex_sends_is_known(path: Path) -> None:
    assert unknown_responses_fields(body_of(path)) == frozenset()


def test_python_client_fields_are_known() -> None:
    captured = orjson.loads((CAPTURES / "python-clients_requests.json").read_bytes())
    checked = 0
    for request in captured["requests"]:
        if request["path"] == "/v1/chat/completions":
            assert unknown_chat_fields(request["body"]) == frozenset(), request["client"]
            checked += 1
        elif request["path"] == "/v1/responses":
            assert unknown_responses_fields(request["body"]) == frozenset(), request["client"]
            checked += 1
    assert checked >= 4


CONVERSATION: dict[str, Any] = {
    "model": "gpt-5",
    "instructions": "Be brief.",
    "input": [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Sandbox: read-only."}],
        },
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look."}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "lookup",
            "namespace": "crm",
            "arguments": '{"q":"x"}',
        },
        {
            "type": "custom_tool_call",
            "call_id": "call_2",
            "name": "apply_patch",
            "input": "*** Begin Patch",
        },
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        {
            "type": "custom_tool_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "patched"}],
        },
        {"type": "message", "role": "developer", "content": "Now answer."},
    ],
    "tools": [
        {
            "type": "namespace",
            "name": "crm",
            "description": "CRM",
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        },
        {"type": "custom", "name": "apply_patch", "description": "Patch files"},
        {"type": "web_search", "external_web_access": False},
    ],
    "tool_choice": {"type": "function", "name": "lookup", "namespace": "crm"},
    "reasoning": {"effort": "high", "summary": "auto"},
    "text": {
        "format": {
            "type": "json_schema",
            "name": "out",
            "schema": {"type": "object"},
            "strict": True,
        },
        "verbosity": "low",
    },
    "max_output_tokens": 500,
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "stream": True,
}


def test_responses_to_chat() -> None:
    chat = responses_to_chat_request(CONVERSATION, "glm-5")
    system, user, assistant, tool1, tool2 = chat["messages"]
    assert system == {
        "role": "system",
        "content": "Be brief.\n\nSandbox: read-only.\n\nNow answer.",
    }
    assert user["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    assert assistant["content"] == "Let me look."
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "crm__lookup", "arguments": '{"q":"x"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'},
        },
    ]
    assert tool1 == {"role": "tool", "tool_call_id": "call_1", "content": "found"}
    assert tool2 == {"role": "tool", "tool_call_id": "call_2", "content": "patched"}
    assert [t["function"]["name"] for t in chat["tools"]] == ["crm__lookup", "apply_patch"]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "crm__lookup"}}
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["max_tokens"] == 500 and chat["stream"] is True
    assert not {"store", "include", "input", "instructions", "text"} & set(chat)


def test_responses_to_anthropic_goes_through_chat() -> None:
    anthropic = responses_to_anthropic_request(CONVERSATION, "MiniMax-M2")
    assert anthropic["system"].startswith("Be brief.")
    assert anthropic["messages"][1]["content"][-1]["type"] == "tool_use"
    assert anthropic["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "found",
    }
    assert anthropic["tool_choice"] == {"type": "tool", "name": "crm__lookup"}


def test_a_bare_string_input_is_one_user_message() -> None:
    chat = responses_to_chat_request({"model": "m", "input": "Hi"}, "x")
    assert chat["messages"] == [{"role": "user", "content": "Hi"}]
    with pytest.raises(ClientRequestError):
        responses_to_chat_request({"model": "m", "input": [1]}, "x")


CHAT: dict[str, Any] = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://x/y"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "required",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "max_completion_tokens": 99,
    "stop": ["\n"],
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_chat_to_responses() -> None:
    body = chat_to_responses_request(CHAT, "gpt-5.2")
    assert body["instructions"] == "Be brief."
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "https://x/y", "detail": "auto"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["text"] == {"format": {"type": "json_object"}}
    assert body["max_output_tokens"] == 99
    assert "stop" not in body and "stream_options" not in body


def test_the_chatgpt_backend_rules() -> None:
    body = codex_backend_request(
        {
            **chat_to_responses_request(CHAT, "gpt-5.2"),
            "temperature": 0.3,
            "top_p": 0.5,
            "user": "u",
            "metadata": {"a": "b"},
        }
    )
    assert body["store"] is False and body["stream"] is True
    assert not set(DROPPED_BY_CODEX_BACKEND) & set(body)
    passthrough = codex_backend_request(
        {
            "model": "gpt-5.2",
            "input": [
                {"type": "message", "role": "developer", "content": "System text"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAA"},
                {"type": "item_reference", "id": "msg_1"},
                {"type": "message", "role": "user", "content": "Hi"},
            ],
            "store": True,
        }
    )
    assert passthrough["instructions"] == "System text"
    assert [i.get("id") for i in passthrough["input"]] == ["rs_2", None]
    assert codex_backend_request({"model": "m", "input": "Hi"})["instructions"] == (
        DEFAULT_INSTRUCTIONS
    )


def test_anthropic_history_reaches_codex_with_its_tool_calls() -> None:
    body = anthropic_to_codex_request(
        {
            "model": "claude",
            "max_tokens": 100,
            "system": "Sys",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": ""},
                        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
                },
            ],
        },
        "gpt-5.2",
    )
    assert body["instructions"] == "Sys"
    assert [i["type"] for i in body["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert body["input"][1]["arguments"] == '{"c":1}'
    assert "max_output_tokens" not in body


RESPONSE: dict[str, Any] = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "gpt-5.2",
    "output": [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [
                {"type": "summary_text", "text": "First."},
                {"type": "summary_text", "text": "Then."},
            ],
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "lookup",
            "namespace": "crm",
            "arguments": "{}",
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 120,
    },
}


def codex_reply(response: dict[str, Any]) -> UpstreamReply:
    """A whole Responses object as a codex provider delivers it: the events of its stream,
    whose `response.completed` carries it."""
    decoder = ResponsesStreamDecoder()
    events = decoder.feed(None, {"type": "response.completed", "response": response})
    return UpstreamReply(None, tuple(e for e in events if not isinstance(e, UpstreamFault)))


def answer(client: ClientAPI, provider: ProviderFormat, reply: UpstreamReply, request: Any) -> Any:
    translators = pair(client, provider)
    assert translators is not None
    return translators.answer(reply, "gpt-5.2", request).body


def test_a_codex_reply_for_a_chat_client() -> None:
    chat = answer(ClientAPI.OPENAI, ProviderFormat.CODEX, codex_reply(RESPONSE), {})
    message = chat["choices"][0]["message"]
    assert chat["id"] == "chatcmpl-abc"
    assert message["content"] == "Hello"
    assert message["reasoning_content"] == "First.\n\nThen."
    assert message["tool_calls"][0]["function"] == {"name": "crm__lookup", "arguments": "{}"}
    assert chat["choices"][0]["finish_reason"] == "tool_calls"
    assert chat["usage"]["prompt_tokens"] == 100
    assert chat["usage"]["prompt_tokens_details"] == {"cached_tokens": 40}
    assert chat["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}
    incomplete = {
        **RESPONSE,
        "status": "incomplete",
        "output": RESPONSE["output"][:2],
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    cut = answer(ClientAPI.OPENAI, ProviderFormat.CODEX, codex_reply(incomplete), {})
    assert cut["choices"][0]["finish_reason"] == "length"


def test_a_chat_reply_for_a_responses_client() -> None:
    chat = answer(ClientAPI.OPENAI, ProviderFormat.CODEX, codex_reply(RESPONSE), {})
    request = {"tools": CONVERSATION["tools"]}
    back = answer(ClientAPI.RESPONSES, ProviderFormat.OPENAI, UpstreamReply(chat), request)
    assert back["id"] == "resp_abc" and back["status"] == "completed"
    assert [i["type"] for i in back["output"]] == ["reasoning", "message", "function_call"]
    assert back["usage"]["input_tokens"] == 100
    assert back["usage"]["input_tokens_details"]["cached_tokens"] == 40
    call = back["output"][2]
    assert (call["namespace"], call["name"], call["call_id"]) == ("crm", "lookup", "call_1")
    think = {
        "id": "x",
        "choices": [{"message": {"content": "<think>hm</think>Hi"}, "finish_reason": "length"}],
    }
    split = answer(ClientAPI.RESPONSES, ProviderFormat.OPENAI, UpstreamReply(think), {})
    assert [i["type"] for i in split["output"]] == ["reasoning", "message"]
    assert split["status"] == "incomplete"


def test_custom_calls_are_restored_with_their_raw_input() -> None:
    request = {"tools": [{"type": "custom", "name": "apply_patch"}]}

    def chat_calling(arguments: str) -> UpstreamReply:
        call = {"id": "c", "function": {"name": "apply_patch", "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return UpstreamReply(
            {"id": "x", "choices": [{"message": message, "finish_reason": "stop"}]}
        )

    out = answer(
        ClientAPI.RESPONSES, ProviderFormat.OPENAI, chat_calling('{"input":"*** Begin"}'), request
    )
    (call,) = out["output"]
    assert (call["type"], call["input"]) == ("custom_tool_call", "*** Begin")
    broken = answer(ClientAPI.RESPONSES, ProviderFormat.OPENAI, chat_calling("not json"), request)
    assert broken["output"][0]["input"] == "not json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": [1]}, "input[0]"),
        ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"model": "m", "input": "x", "background": True}, "background"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
    ],
)
def test_validation(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientRequestError) as refused:
        validate_responses_request(body)
    assert refused.value.param == param


def test_responses_usage_reads_back_what_it_writes_cache_writes_included() -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=7,
        cache_read_input_tokens=200,
        cache_creation_input_tokens=1000,
        reasoning_tokens=3,
    )
    assert usage_from_responses(usage_to_responses(usage)) == usage
    assert usage_from_responses({"input_tokens": 50, "output_tokens": 5}) == Usage(50, 5)
