"""The Responses API in the translation matrix: one entry point per (client, provider) pair.

responses_request.py    Responses <-> chat completions requests
responses_response.py   the pieces of a Responses object (the accumulator and the stream
                        encoder build whole answers from them)
responses_tools.py      namespaced and custom tools across flat function calling
responses_dropped.py    what each direction leaves behind, and why
stream_responses.py     upstream Responses SSE (codex) -> neutral stream events
stream_responses_encode.py   neutral stream events -> the client's Responses SSE

Anthropic requests are reached through chat completions: the OpenAI <-> Anthropic request
translators already carry every decision about that pair, and composing keeps one place per
decision. Replies take no such detour: every reply is read into neutral events and rendered for
the client once (`replies`). Codex providers (the ChatGPT backend) speak Responses with extra
rules, applied last by `codex_backend_request`.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ClientRequestError
from proxy.translate.request_to_anthropic import openai_to_anthropic_request
from proxy.translate.request_to_openai import anthropic_to_openai_request
from proxy.translate.responses_dropped import CODEX_BACKEND_FIELDS, REJECTED_RESPONSES_FIELDS
from proxy.translate.responses_request import chat_to_responses_request, responses_to_chat_request
from proxy.types import JSONObject

DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
"""The ChatGPT backend refuses a request without instructions; used only when neither the request
nor its leading system messages give any."""

_SYSTEM_ROLES = frozenset({"system", "developer"})


# --- requests ----------------------------------------------------------------------------------


def responses_to_anthropic_request(body: JSONObject, model: str) -> JSONObject:
    return openai_to_anthropic_request(responses_to_chat_request(body, model), model)


def openai_to_codex_request(body: JSONObject, model: str) -> JSONObject:
    return codex_backend_request(chat_to_responses_request(body, model))


def anthropic_to_codex_request(body: JSONObject, model: str) -> JSONObject:
    chat = anthropic_to_openai_request(body, model, reasoning_history=False)
    return codex_backend_request(chat_to_responses_request(chat, model))


def responses_to_codex_request(body: JSONObject, model: str) -> JSONObject:
    """Responses client -> codex provider: the client's request with the backend's rules."""
    return codex_backend_request({**body, "model": model})


def codex_backend_request(body: JSONObject) -> JSONObject:
    """A Responses request as the ChatGPT backend accepts it.

    Only `CODEX_BACKEND_FIELDS` pass (the rest, with reasons, in `DROPPED_BY_CODEX_BACKEND`);
    `store` is false and `stream` true, always (the backend refuses anything else, and a
    non-streaming client is answered from the accumulated stream). `instructions` must be a
    non-empty string: when the request has none, its leading system/developer messages become
    them. Reasoning items without encrypted content, and references to stored items, cannot be
    resolved with `store: false` and are left out.
    """
    out = {k: v for k, v in body.items() if k in CODEX_BACKEND_FIELDS}
    out["store"] = False
    out["stream"] = True
    items = out.get("input")
    if isinstance(items, str):
        items = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": items}]}
        ]
    items = [i for i in items if _resolvable(i)] if isinstance(items, list) else []
    instructions = out.get("instructions")
    if not isinstance(instructions, str) or not instructions.strip():
        hoisted: list[str] = []
        while items and isinstance(items[0], dict) and items[0].get("role") in _SYSTEM_ROLES:
            hoisted.append(_item_text(items.pop(0)))
        instructions = "\n\n".join(t for t in hoisted if t) or DEFAULT_INSTRUCTIONS
    out["instructions"] = instructions
    out["input"] = items
    return out


def _resolvable(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("type") == "item_reference":
        return False
    return not (item.get("type") == "reasoning" and not item.get("encrypted_content"))


def _item_text(item: JSONObject) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "\n\n".join(
        str(p["text"])
        for p in (content if isinstance(content, list) else [])
        if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


# --- client validation -------------------------------------------------------------------------


def validate_responses_request(body: object) -> JSONObject:
    """Shape checks for `POST /v1/responses` before routing; details are left to the provider."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ClientRequestError(
            "'model' is required and must be a non-empty string", param="model"
        )
    items = body.get("input")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ClientRequestError(
                    f"input[{index}] must be an object", param=f"input[{index}]"
                )
    elif not isinstance(items, str):
        raise ClientRequestError(
            "'input' is required and must be a string or an array", param="input"
        )
    for key, reason in REJECTED_RESPONSES_FIELDS.items():
        if body.get(key) not in (None, False):
            raise ClientRequestError(f"'{key}' is not supported: {reason}", param=key)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise ClientRequestError("'stream' must be a boolean", param="stream")
    return body


__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "anthropic_to_codex_request",
    "chat_to_responses_request",
    "codex_backend_request",
    "openai_to_codex_request",
    "responses_to_anthropic_request",
    "responses_to_chat_request",
    "responses_to_codex_request",
    "validate_responses_request",
]
