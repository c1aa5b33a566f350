"""What routing needs to know about a request, read from either client format.

Pure and on the hot path: one walk over the messages, no serialisation of its own (the token
estimate is `proxy.tokens`' job). Shapes that are valid but odd (content null, a string, a list of
parts, unknown part types) are read leniently; validating the body is the server's job, so the only
error raised here is ClientRequestError, for a body or model routing cannot work with at all.

Reasoning: Anthropic `thinking.type` "enabled"/"adaptive"; OpenAI `reasoning_effort` other than
"none"/"minimal" (those ask for speed, not thought); a `reasoning` object (Responses, OpenRouter)
unless it says `enabled: false` or an effort of "none"/"minimal".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.errors import ClientRequestError
from proxy.tokens import estimate_request_tokens
from proxy.translate.responses_tools import declared_tools
from proxy.types import ClientAPI, JSONObject, RequestSummary

WEB_SEARCH_TOOL_NAMES = frozenset({"web_search", "brave_web_search", "google_search"})
_NO_REASONING_EFFORTS = frozenset({"none", "minimal"})
_IMAGE_PART_TYPES = frozenset({"image", "image_url", "input_image"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})


def summarize(
    body: JSONObject,
    fmt: ClientAPI,
    token_estimate: int | None = None,
    estimator: Callable[[JSONObject, ClientAPI], int] = estimate_request_tokens,
) -> RequestSummary:
    """What routing needs to know about a request. `token_estimate`: this body's estimate, when
    something (the rate limiter) already made it; otherwise `estimator` makes it."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ClientRequestError("'model' must be a non-empty string", param="model")
    responses = fmt is ClientAPI.RESPONSES
    messages = _responses_messages(body.get("input")) if responses else body.get("messages")
    # Codex may declare every tool in an `additional_tools` input item and send `tools: []`.
    tools = declared_tools(body) if responses else body.get("tools")
    has_images, last_user = _scan_messages(messages if isinstance(messages, list) else [])
    return RequestSummary(
        model=model,
        has_images=has_images,
        has_web_search=_has_web_search(body, tools, fmt),
        wants_reasoning=_wants_reasoning(body, fmt),
        has_tools=bool(tools) or bool(body.get("functions")),
        token_estimate=(token_estimate if token_estimate is not None else estimator(body, fmt)),
        max_output_tokens=_max_output_tokens(body, fmt),
        last_user_text=_text_of(last_user.get("content")) if last_user else "",
    )


def _scan_messages(messages: list[Any]) -> tuple[bool, dict[str, Any] | None]:
    has_images = False
    last_user: dict[str, Any] | None = None
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            last_user = message
        if not has_images:
            has_images = _contains_image(message.get("content"))
    return has_images, last_user


def _contains_image(content: Any) -> bool:
    """Image parts at any depth: Anthropic tool_result content may itself hold images."""
    if not isinstance(content, list):
        return False
    for part in content:
        if isinstance(part, dict):
            if _part_type(part) in _IMAGE_PART_TYPES:
                return True
            if _contains_image(part.get("content")):
                return True
    return False


def _part_type(part: dict[str, Any]) -> str:
    """A part's `type`, or "" when it is not a string (a list there must not crash a set lookup)."""
    kind = part.get("type")
    return kind if isinstance(kind, str) else ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        p["text"]
        for p in content
        if isinstance(p, dict)
        and _part_type(p) in _TEXT_PART_TYPES
        and isinstance(p.get("text"), str)
    ]
    return "\n".join(texts)


def _responses_messages(items: Any) -> list[Any]:
    """Responses `input`: a bare string is one user message; items without a role are skipped."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return items if isinstance(items, list) else []


def _is_web_search(tool: object) -> bool:
    """A server web-search tool: Anthropic's `web_search_20250305`..., OpenAI's `web_search`,
    `web_search_preview`... (their types start with "web_search"), or a function by a search
    tool's name (OpenAI chat nests the name under `function`)."""
    if not isinstance(tool, dict):
        return False
    kind = tool.get("type")
    if isinstance(kind, str) and kind.startswith("web_search"):
        return True
    name = tool.get("name")
    if not isinstance(name, str):
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
    return isinstance(name, str) and name.lower() in WEB_SEARCH_TOOL_NAMES


def _has_web_search(body: JSONObject, tools: Any, fmt: ClientAPI) -> bool:
    if body.get("web_search_options") is not None:
        return True
    if fmt is ClientAPI.RESPONSES:
        # Codex declares its `web_search` tool on every request: only forcing it asks for search.
        choice = body.get("tool_choice")
        return isinstance(choice, dict) and str(choice.get("type", "")).startswith("web_search")
    if not isinstance(tools, list):
        return False
    return any(map(_is_web_search, tools))  # no generator frame: agents send dozens of tools


def _wants_reasoning(body: JSONObject, fmt: ClientAPI) -> bool:
    if fmt is ClientAPI.ANTHROPIC:
        thinking = body.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return effort not in _NO_REASONING_EFFORTS
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, dict):
        return False
    if reasoning.get("enabled") is False:
        return False
    # `{"summary": "auto"}` alone (every Codex request) only shapes how reasoning is reported.
    effort = reasoning.get("effort")
    return isinstance(effort, str) and effort not in _NO_REASONING_EFFORTS


def _max_output_tokens(body: JSONObject, fmt: ClientAPI) -> int | None:
    if fmt is ClientAPI.ANTHROPIC:
        keys: tuple[str, ...] = ("max_tokens",)
    elif fmt is ClientAPI.RESPONSES:
        keys = ("max_output_tokens",)
    else:
        keys = ("max_completion_tokens", "max_tokens")
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
