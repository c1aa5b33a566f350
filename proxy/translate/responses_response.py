"""The pieces of a Responses API `response` object: its envelope, output items, status and
usage, both ways. The stream encoder and the accumulator's Responses rendering build responses
from them; the stream decoder reads status and usage with them.

Decisions:
- Reasoning becomes a `reasoning` item whose `summary` holds the text (what the API shows of a
  model's thinking); a reasoning item's summary (else its raw content) is read as reasoning.
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

from proxy.translate.common import join_text
from proxy.translate.reasons import with_tool_calls
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
    """The inverse of `usage_to_responses`: `input_tokens` counts every prompt token, of which
    `cached_tokens` were read from the cache and `cache_write_tokens` written to it."""
    if not isinstance(usage, Mapping):
        return Usage()
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    out_details = usage.get("output_tokens_details")
    read = _count(details.get("cached_tokens"))
    written = _count(details.get("cache_write_tokens"))
    prompt = max(_count(usage.get("input_tokens")), read + written)
    return Usage(
        input_tokens=prompt - read - written,
        output_tokens=_count(usage.get("output_tokens")),
        cache_read_input_tokens=read,
        cache_creation_input_tokens=written,
        reasoning_tokens=_count(
            out_details.get("reasoning_tokens") if isinstance(out_details, Mapping) else 0
        ),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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


def refusal_item(item_id: str, refusal: str) -> JSONObject:
    """A `message` item whose one part is the model's refusal."""
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": refusal}],
    }


def reasoning_item(item_id: str, text: str) -> JSONObject:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary}


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
