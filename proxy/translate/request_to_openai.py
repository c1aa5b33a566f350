"""Anthropic Messages request -> OpenAI chat completions request.

For OpenAI-compatible providers (Z.ai, Cerebras, DeepSeek, Groq...). Decisions, in short:

- `system` (string or text blocks) and every `role: "system"` message inside `messages` (Claude
  Code sends one mid-conversation) become ONE leading system message: many chat templates
  reject a system message anywhere but first. Claude Code's billing-header block is left out.
- Text-only content becomes a plain string (blocks joined by a blank line): some servers accept
  only strings for text models. Content with images becomes a list of parts.
- A user message holding tool_result blocks becomes one `tool` message per result, followed by a
  user message with the rest of its content (and any images the tool results carried, which an
  OpenAI tool message cannot hold).
- Assistant `thinking` blocks become `reasoning_content` (the Z.ai / DeepSeek convention);
  `redacted_thinking` and signatures are dropped.
- `metadata.user_id` (Claude Code's is a JSON string with device and session ids) becomes
  `user` only as a stable hash: enough for a provider's abuse tracking, and no client
  identifier reaches a third party (a provider with `forward_user_id = true` gets it as is).
- Fields with no OpenAI counterpart are listed, with reasons, in `dropped.py`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from proxy.errors import ClientRequestError
from proxy.translate.common import (
    ANTHROPIC_EFFORT_TO_OPENAI,
    BILLING_HEADER_PREFIX,
    TOOL_ERROR_PREFIX,
    dump_tool_input,
    effort_for_budget,
    join_text,
)
from proxy.translate.dropped import ANTHROPIC_CUSTOM_TOOL_TYPES
from proxy.types import JSONObject

RESPONSE_FORMAT_NAME = "output"
"""OpenAI's json_schema response format needs a name; Anthropic's output format has none."""


def anthropic_to_openai_request(
    body: JSONObject,
    model: str,
    *,
    reasoning_history: bool = True,
) -> JSONObject:
    """Translate an Anthropic Messages request for an OpenAI-compatible provider.

    `max_tokens` is copied as asked: the walk caps it to the target's output limit
    (`capabilities.clamp_max_tokens`). `reasoning_history=False` leaves earlier thinking out
    of assistant messages, for providers that reject the non-standard `reasoning_content` field.
    Raises ClientRequestError for a body whose shape cannot be a Messages request.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("`messages` must be an array", param="messages")

    system_parts = _system_texts(body.get("system"))
    out_messages: list[JSONObject] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ClientRequestError(f"messages[{index}] must be an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            system_parts.extend(_system_texts(content))
        elif role == "user":
            out_messages.extend(_user_messages(content))
        elif role == "assistant":
            assistant = _assistant_message(content, reasoning_history)
            if assistant is not None:
                out_messages.append(assistant)
        else:
            raise ClientRequestError(
                f"messages[{index}].role must be user or assistant, got {role!r}",
                param="messages",
            )

    out: JSONObject = {"model": model}
    system_text = join_text(system_parts)
    out["messages"] = ([{"role": "system", "content": system_text}] if system_text else []) + (
        out_messages
    )

    _copy_sampling(body, out)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), {t["function"]["name"] for t in tools}, out)
    effort = _reasoning_effort(body.get("thinking"), body.get("output_config"))
    if effort is not None:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("output_config"))
    if response_format is not None:
        out["response_format"] = response_format
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = opaque_user(metadata["user_id"])
    if body.get("stream") is True:
        out["stream"] = True
        # Without it an OpenAI stream carries no usage at all.
        out["stream_options"] = {"include_usage": True}
    return out


def _system_texts(system: Any) -> list[str]:
    if isinstance(system, str):
        return [system] if system else []
    if not isinstance(system, list):
        return []
    return [
        block["text"]
        for block in system
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
        and not block["text"].startswith(BILLING_HEADER_PREFIX)
    ]


def _blocks(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _collapse(parts: list[JSONObject]) -> str | list[JSONObject]:
    """A list of OpenAI content parts -> a plain string when it is text only."""
    if all(part["type"] == "text" for part in parts):
        return join_text([part["text"] for part in parts])
    return parts


def _image_part(block: JSONObject) -> JSONObject | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "image/png"
        url = f"data:{media};base64,{source['data']}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        return None  # `file` sources name an Anthropic Files API object nobody else can read
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: JSONObject) -> JSONObject:
    """Plain-text documents travel as text; PDFs and file references cannot, and say so."""
    source = block.get("source")
    title = block.get("title")
    if isinstance(source, dict) and source.get("type") == "text":
        text = str(source.get("data", ""))
        return {"type": "text", "text": f"{title}\n\n{text}" if title else text}
    if isinstance(source, dict) and source.get("type") == "content":
        inner = [b.get("text", "") for b in _blocks(source.get("content"))]
        return {"type": "text", "text": join_text([str(title or ""), *map(str, inner)])}
    label = f" {title!r}" if title else ""
    return {"type": "text", "text": f"[document{label} omitted: not supported by this model]"}


def _content_parts(blocks: list[JSONObject]) -> list[JSONObject]:
    """Anthropic user content blocks (no tool results) -> OpenAI content parts."""
    parts: list[JSONObject] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        elif kind == "document":
            parts.append(_document_part(block))
    return parts


def _user_messages(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    tool_messages: list[JSONObject] = []
    tool_images: list[JSONObject] = []
    rest: list[JSONObject] = []
    for block in _blocks(content):
        if block.get("type") == "tool_result":
            message, images = _tool_message(block)
            tool_messages.append(message)
            if images:
                tool_images.append(
                    {
                        "type": "text",
                        "text": f"Images returned by tool call {block.get('tool_use_id')}:",
                    }
                )
                tool_images.extend(images)
        else:
            rest.append(block)
    parts = tool_images + _content_parts(rest)
    if parts:
        return [*tool_messages, {"role": "user", "content": _collapse(parts)}]
    return tool_messages


def _tool_message(block: JSONObject) -> tuple[JSONObject, list[JSONObject]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[JSONObject] = []
    for part in _content_parts(_blocks(content)):
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            images.append(part)
    if images:
        texts.append(f"[{len(images)} image(s) attached in the next user message]")
    text = join_text(texts)
    if block.get("is_error") is True:
        text = TOOL_ERROR_PREFIX + text
    message = {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}
    return message, images


def _assistant_message(content: Any, with_reasoning: bool) -> JSONObject | None:
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JSONObject] = []
    for block in _blocks(content):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and with_reasoning and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": dump_tool_input(block.get("input")),
                    },
                }
            )
    text = join_text(texts)
    if not text and not tool_calls:
        return None  # thinking-only or empty turns: many servers reject an empty assistant turn
    message: JSONObject = {"role": "assistant", "content": text or None}
    reasoning_text = join_text(reasoning)
    if reasoning_text:
        message["reasoning_content"] = reasoning_text
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _copy_sampling(body: JSONObject, out: JSONObject) -> None:
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        # `max_tokens`, not `max_completion_tokens`: every OpenAI-compatible server knows it.
        out["max_tokens"] = max_tokens
    # Anthropic's 0..1 temperature range lies inside OpenAI's 0..2: copied unchanged.
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float):
            out[key] = body[key]
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = [s for s in stops if isinstance(s, str)]


def _tools(tools: Any) -> list[JSONObject]:
    if not isinstance(tools, list):
        return []
    out: list[JSONObject] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        # An unhashable `type` (a client's list or object) would crash the set lookup.
        if not (kind is None or isinstance(kind, str)) or kind not in ANTHROPIC_CUSTOM_TOOL_TYPES:
            continue
        if not isinstance(tool.get("name"), str):
            continue
        function: JSONObject = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = _parameters(tool.get("input_schema"))
        if tool.get("strict") is True:
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def _parameters(schema: Any) -> JSONObject:
    """input_schema -> parameters, without the `$schema` dialect tag strict servers reject."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    if "$schema" not in schema:  # shared, as passthrough shares the body's values: never mutated
        return schema
    return {k: v for k, v in schema.items() if k != "$schema"}


def _tool_choice(choice: Any, tool_names: set[str], out: JSONObject) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name") in tool_names:
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    # A named tool that was dropped (a server tool) leaves the provider's default, auto.
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def _reasoning_effort(thinking: Any, output_config: Any) -> str | None:
    """`thinking` + `output_config.effort` -> reasoning_effort, or None for the provider default.

    Disabled thinking sends nothing rather than "none", which many servers reject. An explicit
    effort wins over a budget; a budget maps by the thresholds in `common.effort_for_budget`.
    Adaptive thinking without an effort leaves the choice to the provider, like it leaves it to
    Claude.
    """
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(effort, str) and effort in ANTHROPIC_EFFORT_TO_OPENAI:
        return ANTHROPIC_EFFORT_TO_OPENAI[effort]
    if kind == "enabled" and isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int):
            return effort_for_budget(budget)
    return None


def _response_format(output_config: Any) -> JSONObject | None:
    if not isinstance(output_config, dict):
        return None
    fmt = output_config.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    if not isinstance(fmt.get("schema"), dict):
        return None
    # Not `strict`: OpenAI strict mode adds schema rules Anthropic does not have, and a schema
    # breaking them would turn a working request into a 400.
    return {
        "type": "json_schema",
        "json_schema": {"name": RESPONSE_FORMAT_NAME, "schema": fmt["schema"]},
    }


def opaque_user(user_id: str) -> str:
    """A stable stand-in for a client's user id: the same id always gives the same value, and
    the value says nothing about the id."""
    return "llmproxy-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def client_user_id(body: JSONObject) -> str | None:
    """The Anthropic request's own `metadata.user_id`, for a provider trusted with it
    (`forward_user_id = true`); `anthropic_to_openai_request` otherwise sends only its hash."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        return str(metadata["user_id"])
    return None
