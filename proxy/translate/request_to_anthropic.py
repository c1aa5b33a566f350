"""OpenAI chat completions request -> Anthropic Messages request.

For Anthropic-format providers (MiniMax, Kimi, Anthropic itself). Decisions, in short:

- `system` and `developer` messages, wherever they are, become the top-level `system` string.
- `tool` messages become `tool_result` blocks; consecutive tool messages and a user message that
  follows them form one user turn (tool results first, as Anthropic requires). Consecutive turns
  of one role are merged, which Anthropic would do anyway and stricter clones require.
- Tool call ids are made Anthropic-safe (`anthropic_tool_id`), identically on both sides.
- Assistant `reasoning_content` is dropped: it has no signature and Anthropic rejects unsigned
  thinking blocks.
- Empty text is skipped (Anthropic rejects empty text blocks); a turn left empty disappears.
- `max_tokens` is required by Anthropic: DEFAULT_MAX_TOKENS when the client gave none.
- Fields with no Anthropic counterpart are listed, with reasons, in `dropped.py`.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ClientRequestError
from proxy.translate.common import (
    EFFORT_TO_BUDGET,
    MIN_THINKING_BUDGET,
    anthropic_tool_id,
    join_text,
    parse_tool_arguments,
    split_data_url,
)
from proxy.types import JSONObject

DEFAULT_MAX_TOKENS = 8192
"""Anthropic requires max_tokens and OpenAI clients often omit it; 8192 fits every current
Anthropic-format model and is enough for a long answer. With reasoning requested, the thinking
budget is added on top, since thinking counts against max_tokens."""

_SYSTEM_ROLES = frozenset({"system", "developer"})


def openai_to_anthropic_request(body: JSONObject, model: str) -> JSONObject:
    """Translate an OpenAI chat completions request for an Anthropic-format provider.

    The walk caps `max_tokens` to the target's output limit afterwards
    (`capabilities.clamp_max_tokens`). Raises ClientRequestError for a body whose shape cannot
    be a chat completions request.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("`messages` must be an array", param="messages")

    system_blocks: list[JSONObject] = []
    turns: list[JSONObject] = []
    legacy_call_ids: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ClientRequestError(f"messages[{index}] must be an object", param="messages")
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system_blocks.extend(_text_blocks(message.get("content")))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content")))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, index, legacy_call_ids))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message.get("tool_call_id"), message)])
        elif role == "function":
            # Legacy function results answer the latest legacy call; they carry no id.
            call_id = legacy_call_ids[-1] if legacy_call_ids else f"call_legacy_{index}"
            _append(turns, "user", [_tool_result(call_id, message)])
        else:
            raise ClientRequestError(
                f"messages[{index}].role {role!r} is not a chat completions role",
                param="messages",
            )

    out: JSONObject = {"model": model}
    if any("cache_control" in block for block in system_blocks):
        out["system"] = system_blocks  # blocks keep the client's cache breakpoints
    elif system_blocks:
        out["system"] = join_text([block["text"] for block in system_blocks])
    out["messages"] = [_finish_turn(turn) for turn in turns]

    tools, tool_choice = _tools_and_choice(body)
    thinking = _thinking(body.get("reasoning_effort"))
    if tools and (tool_choice or {}).get("type") in ("any", "tool"):
        # Anthropic refuses a forced tool while thinking; the forced call is the firmer wish.
        thinking = None
    budget = thinking.get("budget_tokens", 0) if thinking else 0
    out["max_tokens"] = _max_tokens(body, budget)
    if thinking is not None and budget >= out["max_tokens"]:
        # Anthropic needs budget < max_tokens; a client cap that small splits the tokens evenly
        # between thinking and answer, or leaves thinking off when that is below the minimum.
        thinking["budget_tokens"] = out["max_tokens"] // 2
        if thinking["budget_tokens"] < MIN_THINKING_BUDGET:
            thinking = None
    if thinking is not None:
        out["thinking"] = thinking
    _copy_sampling(body, out, thinking_on=thinking is not None and thinking["type"] == "enabled")
    if tools:
        out["tools"] = tools
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
    user = body.get("user") if isinstance(body.get("user"), str) else body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    output_format = _output_format(body.get("response_format"))
    if output_format is not None:
        out["output_config"] = {"format": output_format}
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _append(turns: list[JSONObject], role: str, blocks: list[JSONObject]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _finish_turn(turn: JSONObject) -> JSONObject:
    blocks: list[JSONObject] = turn["content"]
    if turn["role"] == "user":
        # Anthropic wants the tool results of a user turn before anything else in it.
        blocks = [b for b in blocks if b["type"] == "tool_result"] + [
            b for b in blocks if b["type"] != "tool_result"
        ]
    if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return {"role": turn["role"], "content": blocks}


def _obj(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _parts(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def _text_of(content: Any) -> str:
    return join_text(
        [
            p["text"]
            for p in _parts(content)
            if p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
    )


def _with_cache_control(block: JSONObject, part: JSONObject) -> JSONObject:
    """Keep a `cache_control` an OpenAI client put on a part (the OpenRouter/LiteLLM convention
    for reaching Anthropic's prompt cache through an OpenAI-format API)."""
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any) -> list[JSONObject]:
    return [
        _with_cache_control({"type": "text", "text": part["text"]}, part)
        for part in _parts(content)
        if part.get("type") == "text" and isinstance(part.get("text"), str) and part["text"]
    ]


def _user_blocks(content: Any) -> list[JSONObject]:
    blocks: list[JSONObject] = []
    for part in _parts(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
            blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "image_url":
            blocks.append(_with_cache_control(_image_block(part.get("image_url")), part))
        elif kind == "file":
            blocks.append(_file_block(part.get("file")))
        elif kind == "input_audio":
            blocks.append({"type": "text", "text": "[audio input omitted: not supported]"})
    return blocks


def _image_block(image_url: Any) -> JSONObject:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        return {"type": "text", "text": "[image omitted: no URL]"}
    data_url = split_data_url(url)
    if data_url is not None:
        media, data = data_url
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return {"type": "text", "text": "[image omitted: unsupported URL]"}


def _file_block(file: Any) -> JSONObject:
    file_data = file.get("file_data") if isinstance(file, dict) else None
    data_url = split_data_url(file_data) if isinstance(file_data, str) else None
    if data_url is not None and data_url[0] == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": data_url[1]}
        block: JSONObject = {"type": "document", "source": source}
        if isinstance(file, dict) and isinstance(file.get("filename"), str):
            block["title"] = file["filename"]
        return block
    # OpenAI file ids name objects in OpenAI's storage, unreadable anywhere else.
    return {"type": "text", "text": "[file omitted: not supported]"}


def _assistant_blocks(
    message: JSONObject, index: int, legacy_call_ids: list[str]
) -> list[JSONObject]:
    blocks: list[JSONObject] = []
    text = _text_of(message.get("content"))
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]  # a refusal is what the assistant said
    if text:
        blocks.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls")
    for position, call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
        if not isinstance(call, dict):
            continue
        fallback_id = f"call_{index}_{position}"
        if call.get("type") == "custom" and isinstance(call.get("custom"), dict):
            custom = call["custom"]
            name, tool_input = custom.get("name"), {"input": custom.get("input", "")}
        else:
            function = _obj(call.get("function"))
            name, tool_input = function.get("name"), parse_tool_arguments(function.get("arguments"))
        blocks.append(
            {
                "type": "tool_use",
                "id": anthropic_tool_id(call.get("id"), fallback_id),
                "name": str(name or ""),
                "input": tool_input,
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        call_id = f"call_legacy_{index}"
        legacy_call_ids.append(call_id)
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": str(legacy.get("name", "")),
                "input": parse_tool_arguments(legacy.get("arguments")),
            }
        )
    return blocks


def _tool_result(call_id: Any, message: JSONObject) -> JSONObject:
    block: JSONObject = {
        "type": "tool_result",
        "tool_use_id": anthropic_tool_id(call_id, "call_unknown"),
    }
    content = message.get("content")
    if isinstance(content, list):  # text parts stay separate blocks
        texts = [
            {"type": "text", "text": p["text"]}
            for p in _parts(content)
            if p.get("type") == "text" and isinstance(p.get("text"), str) and p["text"]
        ]
        if texts:
            block["content"] = texts
    elif isinstance(content, str) and content:
        block["content"] = content
    # An empty result is sent without content: Anthropic rejects empty text blocks.
    return block


def _tools_and_choice(body: JSONObject) -> tuple[list[JSONObject], JSONObject | None]:
    raw_tools = body.get("tools")
    if not isinstance(raw_tools, list):
        legacy = body.get("functions")
        raw_tools = (
            [{"type": "function", "function": f} for f in legacy]
            if isinstance(legacy, list)
            else []
        )
    tools: list[JSONObject] = []
    for tool in raw_tools:
        # `custom` (free-form grammar) tools have no Anthropic counterpart.
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        out: JSONObject = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"]:
            out["description"] = function["description"]
        out["input_schema"] = _input_schema(function.get("parameters"))
        if function.get("strict") is True:
            out["strict"] = True
        tools.append(out)

    choice = body.get("tool_choice", body.get("function_call"))
    tool_choice: JSONObject | None = None
    if choice in ("auto", "none"):
        tool_choice = {"type": choice}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif isinstance(choice, dict):
        tool_choice, tools = _dict_tool_choice(choice, tools)
    if body.get("parallel_tool_calls") is False and (tool_choice or {}).get("type") != "none":
        tool_choice = {**(tool_choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return tools, tool_choice


def _dict_tool_choice(
    choice: JSONObject, tools: list[JSONObject]
) -> tuple[JSONObject | None, list[JSONObject]]:
    if choice.get("type") == "allowed_tools" and isinstance(choice.get("allowed_tools"), dict):
        # Anthropic cannot restrict without removing: keep only the allowed tools.
        allowed = choice["allowed_tools"]
        names = {
            _obj(_obj(t).get("function")).get("name")
            for t in (allowed.get("tools") if isinstance(allowed.get("tools"), list) else [])
        }
        kind = "any" if allowed.get("mode") == "required" else "auto"
        return {"type": kind}, [t for t in tools if t["name"] in names]
    name = _obj(choice.get("function")).get("name", choice.get("name"))
    if isinstance(name, str) and any(t["name"] == name for t in tools):
        return {"type": "tool", "name": name}, tools
    return None, tools


def _input_schema(parameters: Any) -> JSONObject:
    """Anthropic requires an object schema; OpenAI allows none at all for argument-less tools."""
    if not isinstance(parameters, dict) or not parameters:
        return {"type": "object", "properties": {}}
    if "type" not in parameters:
        return {"type": "object", **parameters}
    return parameters


def _thinking(effort: Any) -> JSONObject | None:
    """reasoning_effort -> thinking. "none" disables; unknown values leave the default."""
    if effort == "none":
        return {"type": "disabled"}
    if isinstance(effort, str) and effort in EFFORT_TO_BUDGET:
        return {"type": "enabled", "budget_tokens": EFFORT_TO_BUDGET[effort]}
    return None


def _max_tokens(body: JSONObject, budget: int) -> int:
    value = body.get("max_completion_tokens")
    if not isinstance(value, int) or isinstance(value, bool):
        value = body.get("max_tokens")
    if not isinstance(value, int) or isinstance(value, bool):
        value = DEFAULT_MAX_TOKENS + budget
    return value


def _copy_sampling(body: JSONObject, out: JSONObject, *, thinking_on: bool) -> None:
    # Anthropic rejects a modified temperature or top_p while extended thinking is on.
    if not thinking_on:
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            out["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI allows up to 2
        top_p = body.get("top_p")
        # Current Claude models reject temperature and top_p together; temperature wins.
        if (
            isinstance(top_p, int | float)
            and not isinstance(top_p, bool)
            and "temperature" not in out
        ):
            out["top_p"] = top_p
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    # Anthropic rejects whitespace-only stop sequences (OpenAI clients like "\n").
    kept = [s for s in stops if isinstance(s, str) and s.strip()]
    if kept:
        out["stop_sequences"] = kept


def _output_format(response_format: Any) -> JSONObject | None:
    """json_schema -> output_config.format; `json_object` and `text` have no counterpart."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return None
    return {"type": "json_schema", "schema": spec["schema"]}
