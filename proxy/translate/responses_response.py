"""Responses API `response` objects <-> OpenAI chat.completion objects, and the pieces both the
non-streaming translators and the Responses stream encoder build responses from.

Decisions:
- Reasoning becomes a `reasoning` item whose `summary` holds the text (what the API shows of a
  model's thinking); a Responses reasoning summary becomes chat `reasoning_content`.
- Usage: Responses `input_tokens` counts cached tokens too, like OpenAI `prompt_tokens`, so it
  goes through the same identity as `reasons.py` (`Usage.input_tokens` is the uncached part).
- Status: `incomplete` with `max_output_tokens` is a MAX_TOKENS stop, with `content_filter` a
  content-filter stop; `completed` is an end of turn, or a tool-use stop when calls were made.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from proxy.translate.accumulate import chat_completion
from proxy.translate.common import join_text, split_think_tags
from proxy.translate.reasons import (
    openai_finish_to_stop,
    usage_from_openai,
    with_tool_calls,
)
from proxy.translate.responses_tools import custom_arguments, flat_name
from proxy.types import JSONObject, StopReason, Usage

# Request fields a response object echoes back, as the API does.
_ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
)
_INCOMPLETE_STOP: Mapping[str, StopReason] = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def response_id_for(upstream_id: Any) -> str:
    """`chatcmpl-abc` / `msg_abc` -> `resp_abc`; a fresh id when the provider sent none."""
    if not isinstance(upstream_id, str) or not upstream_id:
        return new_response_id()
    base: str = upstream_id
    for prefix in ("chatcmpl-", "msg_", "resp_"):
        base = base.removeprefix(prefix)
    return "resp_" + base


def usage_to_responses(usage: Usage) -> JSONObject:
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.output_tokens,
    }


def usage_from_responses(usage: Any) -> Usage:
    if not isinstance(usage, Mapping):
        return Usage()
    details = usage.get("input_tokens_details")
    out_details = usage.get("output_tokens_details")
    # The same identity as chat usage: total input = uncached + cached.
    return usage_from_openai(
        {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "prompt_tokens_details": details if isinstance(details, Mapping) else {},
            "completion_tokens_details": {
                "reasoning_tokens": out_details.get("reasoning_tokens")
                if isinstance(out_details, Mapping)
                else 0
            },
        }
    )


def status_for(stop: StopReason) -> tuple[str, JSONObject | None]:
    """A stop reason -> the response's `status` and `incomplete_details`."""
    if stop is StopReason.MAX_TOKENS:
        return "incomplete", {"reason": "max_output_tokens"}
    if stop is StopReason.CONTENT_FILTER:
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def stop_for(response: Mapping[str, Any], has_calls: bool) -> StopReason:
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    if response.get("status") == "incomplete" and isinstance(reason, str):
        return _INCOMPLETE_STOP.get(reason, StopReason.MAX_TOKENS)
    return with_tool_calls(StopReason.END_TURN, has_calls)


def response_object(
    *,
    response_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[JSONObject],
    usage: Usage | None,
    incomplete_details: JSONObject | None = None,
    error: JSONObject | None = None,
    request: Mapping[str, Any] | None = None,
) -> JSONObject:
    """A `response` object with every field the SDK's `Response` model requires."""
    body: JSONObject = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": usage_to_responses(usage) if usage is not None else None,
        "user": None,
    }
    if status == "completed":
        body["completed_at"] = int(time.time())
    for key in _ECHOED:
        if request is not None and request.get(key) is not None:
            body[key] = request[key]
    return body


def message_item(item_id: str, text: str, status: str = "completed") -> JSONObject:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content if text or status == "completed" else [],
    }


def reasoning_item(item_id: str, text: str) -> JSONObject:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary}


# --- Responses -> chat.completion --------------------------------------------------------------


def responses_to_chat_response(body: JSONObject, model: str) -> JSONObject:
    """Translate a Responses `response` into an OpenAI chat.completion reporting `model`."""
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JSONObject] = []
    output = body.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            texts.append(output_text(item))
        elif kind == "reasoning":
            reasoning.append(reasoning_text(item))
        elif kind in ("function_call", "custom_tool_call"):
            namespace = item.get("namespace")
            name = flat_name(
                namespace if isinstance(namespace, str) else None, str(item.get("name", ""))
            )
            arguments = (
                custom_arguments(item.get("input"))
                if kind == "custom_tool_call"
                else str(item.get("arguments") or "{}")
            )
            tool_calls.append(
                {
                    "id": str(item.get("call_id") or item.get("id") or ""),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
    text = "".join(texts)
    message: JSONObject = {"role": "assistant", "content": text or None, "refusal": None}
    reasoning_joined = join_text(reasoning)
    if reasoning_joined:
        message["reasoning_content"] = reasoning_joined
    if tool_calls:
        message["tool_calls"] = tool_calls
    stop = stop_for(body, bool(tool_calls))
    created = body.get("created_at")
    response_id = str(body.get("id") or "")
    return chat_completion(
        "chatcmpl-" + (response_id.removeprefix("resp_") or uuid.uuid4().hex),
        int(created) if isinstance(created, int | float) else int(time.time()),
        model,
        message,
        stop,
        usage_from_responses(body.get("usage")),
    )


def output_text(item: Mapping[str, Any]) -> str:
    """The visible text of a `message` output item (refusals included: it is what was said)."""
    parts = item.get("content")
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        value = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
        if isinstance(value, str):
            texts.append(value)
    return "".join(texts)


def reasoning_text(item: Mapping[str, Any]) -> str:
    """A reasoning item's readable text: its summary parts, else its raw reasoning content."""
    for key in ("summary", "content"):
        parts = item.get(key)
        texts = [
            str(p["text"])
            for p in (parts if isinstance(parts, list) else [])
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        if texts:
            return join_text(texts)
    return ""


# --- chat.completion -> Responses --------------------------------------------------------------


def chat_to_responses_response(
    body: JSONObject, model: str, *, request: Mapping[str, Any] | None = None
) -> JSONObject:
    """Translate an OpenAI chat.completion into a Responses `response` reporting `model`.

    Tool calls keep their flat names; `responses_tools.restore_output` puts namespaced and
    custom calls back for the client that declared them.
    """
    response_id = response_id_for(body.get("id"))
    base = response_id.removeprefix("resp_")
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(message, dict)

    reasoning = _str(message.get("reasoning_content")) or _str(message.get("reasoning"))
    text = _chat_text(message.get("content"))
    if not reasoning:
        reasoning, text = split_think_tags(text)
    output: list[JSONObject] = []
    if reasoning:
        output.append(reasoning_item(f"rs_{base}", reasoning))
    refusal = message.get("refusal")
    if text:
        output.append(message_item(f"msg_{base}", text))
    elif isinstance(refusal, str) and refusal:
        output.append(
            {
                "id": f"msg_{base}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": refusal}],
            }
        )
    calls = message.get("tool_calls")
    for index, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict):
            continue
        call_id = str(call.get("id") or f"call_{base}_{index}")
        if call.get("type") == "custom" and isinstance(call.get("custom"), dict):
            output.append(
                {
                    "id": f"ctc_{base}_{index}",
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": str(call["custom"].get("name", "")),
                    "input": str(call["custom"].get("input", "")),
                }
            )
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(function, dict)
        output.append(
            {
                "id": f"fc_{base}_{index}",
                "type": "function_call",
                "status": "completed",
                "call_id": call_id,
                "name": str(function.get("name", "")),
                "arguments": str(function.get("arguments") or "{}"),
            }
        )
    has_calls = any(item["type"] != "message" and item["type"] != "reasoning" for item in output)
    stop = with_tool_calls(
        openai_finish_to_stop(_str(choice.get("finish_reason")) or None), has_calls
    )
    status, incomplete = status_for(stop)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    created = body.get("created")
    return response_object(
        response_id=response_id,
        model=model,
        created_at=int(created) if isinstance(created, int | float) else int(time.time()),
        status=status,
        output=output,
        usage=usage_from_openai(usage),
        incomplete_details=incomplete,
        request=request,
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _chat_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            str(p["text"])
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return _str(content)
