"""Request translation: the public entry points, one per (client format, provider format) pair.

The translators are pure functions, dict in and dict out. Same format in and out is a pass-through
that replaces only `model`, so unknown fields, betas and cache_control reach the provider as the
client sent them.
"""

from __future__ import annotations

from proxy.translate.request_to_anthropic import DEFAULT_MAX_TOKENS, openai_to_anthropic_request
from proxy.translate.request_to_openai import anthropic_to_openai_request
from proxy.types import JSONObject

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "anthropic_to_openai_request",
    "drop_unsigned_thinking",
    "openai_to_anthropic_request",
    "passthrough_request",
]


def passthrough_request(body: JSONObject, model: str) -> JSONObject:
    """A shallow copy of `body` with `model` replaced; nothing else changes."""
    return {**body, "model": model}


def drop_unsigned_thinking(body: JSONObject) -> JSONObject:
    """An Anthropic request without thinking blocks whose signature is empty.

    Thinking that came from an OpenAI-compatible provider reaches Anthropic clients with
    `signature: ""` (see responses.py). When such a history is later sent to a real Anthropic
    upstream, those blocks would be rejected; this removes them (and nothing else). Returns
    `body` itself when there is nothing to remove.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_has_unsigned(m) for m in messages):
        return body
    cleaned = []
    for message in messages:
        if _has_unsigned(message):
            content = [b for b in message["content"] if not _is_unsigned(b)]
            if not content:
                continue
            message = {**message, "content": content}
        cleaned.append(message)
    return {**body, "messages": cleaned}


def _is_unsigned(block: object) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


def _has_unsigned(message: object) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and isinstance(message.get("content"), list)
        and any(_is_unsigned(b) for b in message["content"])
    )
