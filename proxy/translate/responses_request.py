"""Responses API requests <-> OpenAI chat completions requests (dict in, dict out, no I/O).

Anthropic is reached through chat completions (see `responses_api.py`), so these two functions
are the only places that know the Responses request shape. Decisions, in short:

Responses -> chat (for OpenAI- and Anthropic-format providers):
- `instructions` and every `system`/`developer` message, wherever it is, become ONE leading
  system message (Codex sends developer messages mid-conversation; many chat templates accept a
  system message only first).
- `function_call` and `custom_tool_call` items join the assistant message before them as
  `tool_calls`; `function_call_output` and `custom_tool_call_output` become `tool` messages.
  Namespaced and custom tools are flattened as `responses_tools.py` describes.
- `shell_call`, `local_shell_call` and `apply_patch_call` items and their outputs become tool
  calls and tool results (`responses_shell.py`), so what a client did with them stays in the
  history.
- `reasoning` items are dropped: their text is a summary, and their encrypted content is
  readable only by OpenAI. A `compaction` item (encrypted too) becomes a note in the system
  prompt saying the earlier turns were compacted out of reach (`COMPACTION_NOTE`);
  `item_reference` and computer-use items are refused with a 400 that names them
  (`REJECTED_RESPONSES_ITEM_TYPES`).
- Hosted tools and the items they leave in the history (`web_search_call`, ...) are dropped.
- `additional_tools` (and `tool_search_output`) items add their tools to the request's tools; a
  `configuration_update` item's reasoning effort becomes `reasoning_effort`. Every other input
  item type of the current Responses API is either translated or listed as dropped with its
  reason (`DROPPED_RESPONSES_ITEM_TYPES`); an unknown type is a 400 that names it.
- Fields with no chat counterpart are listed, with reasons, in `responses_dropped.py`.

Chat -> Responses (for codex providers):
- System and developer messages become `instructions`; assistant tool calls become
  `function_call` items and tool messages `function_call_output` items.
- `reasoning_effort` becomes `reasoning.effort`, with a summary asked for so the client sees
  the reasoning as it does from other providers.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ClientRequestError
from proxy.translate import responses_shell
from proxy.translate.common import join_text
from proxy.translate.responses_dropped import (
    COMPACTION_NOTE,
    DROPPED_RESPONSES_ITEM_TYPES,
    REJECTED_RESPONSES_ITEM_TYPES,
)
from proxy.translate.responses_tools import (
    TOOL_CARRYING_ITEMS,
    custom_arguments,
    declared_tools,
    flat_name,
    function_tools,
)
from proxy.types import JSONObject

_SYSTEM_ROLES = frozenset({"system", "developer"})
CONFIGURATION_UPDATE_ITEM = "configuration_update"
_CHAT_TOOL_TYPES = frozenset({"function", "custom"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "refusal"})


# --- Responses -> chat completions -------------------------------------------------------------


def responses_to_chat_request(body: JSONObject, model: str) -> JSONObject:
    """Translate a Responses request for an OpenAI-compatible provider.

    Raises ClientRequestError for an `input` whose shape cannot be a Responses request.
    """
    system: list[str] = []
    if isinstance(body.get("instructions"), str):
        system.append(body["instructions"])
    messages: list[JSONObject] = []
    for index, item in enumerate(_input_items(body.get("input"))):
        _append_item(item, index, system, messages)

    out: JSONObject = {"model": model}
    system_text = join_text(system)
    out["messages"] = ([{"role": "system", "content": system_text}] if system_text else []) + (
        messages
    )
    tools = function_tools(declared_tools(body))
    if tools:
        out["tools"] = tools
        choice = _chat_tool_choice(body.get("tool_choice"), {t["function"]["name"] for t in tools})
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    max_tokens = body.get("max_output_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out["max_tokens"] = max_tokens  # the name every OpenAI-compatible server knows
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        out["reasoning_effort"] = reasoning["effort"]
    effort = _configured_effort(_input_items(body.get("input")))
    if effort is not None:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    for key in ("user", "safety_identifier"):
        if isinstance(body.get(key), str) and body[key]:
            out[key] = body[key]
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _input_items(value: Any) -> list[JSONObject]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise ClientRequestError("'input' must be a string or an array of items", param="input")
    items: list[JSONObject] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ClientRequestError(f"input[{index}] must be an object", param="input")
        items.append(item)
    return items


def _append_item(
    item: JSONObject, index: int, system: list[str], messages: list[JSONObject]
) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role in _SYSTEM_ROLES:
            text = _text(item.get("content"))
            if text:
                system.append(text)
        elif role == "user":
            content = _user_content(item.get("content"))
            if content:
                messages.append({"role": "user", "content": content})
        elif role == "assistant":
            text = _text(item.get("content"))
            if text:
                message = _assistant(messages)
                message["content"] = join_text([message["content"] or "", text])
        else:
            raise ClientRequestError(
                f"input[{index}].role {role!r} is not a Responses message role", param="input"
            )
    elif kind in ("function_call", "custom_tool_call"):
        name = flat_name(_str_or_none(item.get("namespace")), str(item.get("name", "")))
        raw = item.get("arguments")
        if kind == "custom_tool_call":
            arguments = custom_arguments(item.get("input"))
        else:
            arguments = raw if isinstance(raw, str) and raw else "{}"
        call = {
            "id": str(item.get("call_id") or item.get("id") or f"call_{index}"),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        _assistant(messages).setdefault("tool_calls", []).append(call)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        messages.append(
            {
                "role": "tool",
                "tool_call_id": str(item.get("call_id", "")),
                "content": _output_text(item.get("output")),
            }
        )
    elif kind in responses_shell.CALLS:
        _assistant(messages).setdefault("tool_calls", []).append(
            responses_shell.tool_call(item, index)
        )
    elif kind in responses_shell.OUTPUTS:
        messages.append(responses_shell.tool_result(item, index))
    elif kind == "compaction":
        if COMPACTION_NOTE not in system:
            system.append(COMPACTION_NOTE)
    elif isinstance(kind, str) and kind in REJECTED_RESPONSES_ITEM_TYPES:
        raise ClientRequestError(
            f"input[{index}]: item type {kind!r} cannot be sent to this provider: "
            f"{REJECTED_RESPONSES_ITEM_TYPES[kind]}",
            param="input",
        )
    elif kind in TOOL_CARRYING_ITEMS:
        pass  # its tools join the request's tools (`declared_tools`)
    elif kind == CONFIGURATION_UPDATE_ITEM:
        pass  # its reasoning effort applies to the request (`_configured_effort`)
    elif kind not in DROPPED_RESPONSES_ITEM_TYPES:
        # An item type this translation does not know: dropping it could leave the model
        # without what the client meant it to have (the way Codex's tools once vanished).
        raise ClientRequestError(
            f"input[{index}]: item type {kind!r} is not supported by llmproxy", param="input"
        )
    # The dropped types (reasoning, results of OpenAI-hosted tools) are listed with their
    # reasons in responses_dropped.py.


def _configured_effort(items: list[JSONObject]) -> str | None:
    """The reasoning effort the last `configuration_update` item set, if any: it holds for
    every later response of the conversation, so for this one too."""
    effort = None
    for item in items:
        reasoning = item.get("reasoning") if item.get("type") == CONFIGURATION_UPDATE_ITEM else None
        if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
            effort = reasoning["effort"]
    return effort


def _assistant(messages: list[JSONObject]) -> JSONObject:
    """The assistant message that text and calls of the current turn belong to: the last
    message when it is the assistant's (tool results must follow the message holding their
    calls), else a new one."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        return last
    message: JSONObject = {"role": "assistant", "content": None}
    messages.append(message)
    return message


def _parts(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    return []


def _part_text(part: JSONObject) -> str:
    value = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
    return value if isinstance(value, str) else ""


def _text(content: Any) -> str:
    return join_text([_part_text(p) for p in _parts(content) if p.get("type") in _TEXT_PARTS])


def _user_content(content: Any) -> str | list[JSONObject]:
    parts: list[JSONObject] = []
    for part in _parts(content):
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            text = _part_text(part)
            if text:
                parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if isinstance(url, str) and url:
                image: JSONObject = {"url": url}
                if isinstance(part.get("detail"), str) and part["detail"] != "auto":
                    image["detail"] = part["detail"]
                parts.append({"type": "image_url", "image_url": image})
            else:  # a `file_id` names an object in OpenAI's storage, unreadable elsewhere
                parts.append({"type": "text", "text": "[image omitted: not supported]"})
        elif kind == "input_file":
            file: JSONObject = {
                k: part[k] for k in ("file_data", "filename") if isinstance(part.get(k), str)
            }
            if "file_data" in file:
                parts.append({"type": "file", "file": file})
            else:
                parts.append({"type": "text", "text": "[file omitted: not supported]"})
    if parts and all(p["type"] == "text" for p in parts):
        return join_text([p["text"] for p in parts])
    return parts


def _output_text(output: Any) -> str:
    """A tool output (string, or input_text/input_image parts) -> the text of a tool message."""
    if isinstance(output, str):
        return output
    texts: list[str] = []
    omitted = 0
    for part in _parts(output):
        if part.get("type") in _TEXT_PARTS:
            texts.append(_part_text(part))
        else:
            omitted += 1
    if omitted:
        texts.append(f"[{omitted} non-text part(s) of the tool output omitted]")
    return join_text(texts)


def _chat_tool_choice(choice: Any, names: set[str]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = flat_name(_str_or_none(choice.get("namespace")), str(choice.get("name", "")))
        if name in names:
            return {"type": "function", "function": {"name": name}}
    elif kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    # A hosted tool or a dropped one: the provider's default, auto.
    return None


def _response_format(text: Any) -> JSONObject | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        spec: JSONObject = {"name": str(fmt.get("name") or "output"), "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        if isinstance(fmt.get("description"), str):
            spec["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": spec}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- chat completions -> Responses -------------------------------------------------------------


def chat_to_responses_request(body: JSONObject, model: str) -> JSONObject:
    """Translate an OpenAI chat completions request for a Responses API provider."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("`messages` must be an array", param="messages")
    instructions: list[str] = []
    items: list[JSONObject] = []
    legacy_calls: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ClientRequestError(f"messages[{index}] must be an object", param="messages")
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            text = _chat_text(message.get("content"))
            if text:
                instructions.append(text)
        elif role == "user":
            content = _input_content(message.get("content"))
            if content:
                items.append({"type": "message", "role": "user", "content": content})
        elif role == "assistant":
            items.extend(_assistant_items(message, index, legacy_calls))
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            if role == "function" or not isinstance(call_id, str):
                call_id = legacy_calls[-1] if legacy_calls else f"call_legacy_{index}"
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": _chat_text(message.get("content")),
                }
            )
        else:
            raise ClientRequestError(
                f"messages[{index}].role {role!r} is not a chat completions role",
                param="messages",
            )

    out: JSONObject = {"model": model, "instructions": join_text(instructions), "input": items}
    tools = _responses_tools(body)
    if tools:
        out["tools"] = tools
        choice = _responses_tool_choice(body.get("tool_choice", body.get("function_call")))
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort:
        out["reasoning"] = {"effort": effort, "summary": "auto"}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out["max_output_tokens"] = max_tokens
    for key in ("temperature", "top_p", "user", "safety_identifier"):
        if key in body and body[key] is not None:
            out[key] = body[key]
    text_format = _text_format(body.get("response_format"))
    if text_format is not None:
        out["text"] = {"format": text_format}
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _chat_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return join_text(
            [
                str(p["text"])
                for p in content
                if isinstance(p, dict)
                and p.get("type") == "text"
                and isinstance(p.get("text"), str)
            ]
        )
    return ""


def _input_content(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}] if content else []
    parts: list[JSONObject] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
                parts.append({"type": "input_image", "image_url": url, "detail": detail})
        elif kind == "file" and isinstance(part.get("file"), dict):
            file = part["file"]
            parts.append(
                {"type": "input_file"}
                | {k: file[k] for k in ("file_data", "file_id", "filename") if k in file}
            )
    return parts


def _assistant_items(message: JSONObject, index: int, legacy_calls: list[str]) -> list[JSONObject]:
    items: list[JSONObject] = []
    text = _chat_text(message.get("content"))
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    if text:
        items.append(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    calls = message.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict):
            continue
        call_id = str(call.get("id") or f"call_{index}_{position}")
        if call.get("type") == "custom" and isinstance(call.get("custom"), dict):
            custom = call["custom"]
            items.append(
                {
                    "type": "custom_tool_call",
                    "call_id": call_id,
                    "name": str(custom.get("name", "")),
                    "input": str(custom.get("input", "")),
                }
            )
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": str(function.get("name", "")),
                "arguments": str(function.get("arguments") or "{}"),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        call_id = f"call_legacy_{index}"
        legacy_calls.append(call_id)
        items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": str(legacy.get("name", "")),
                "arguments": str(legacy.get("arguments") or "{}"),
            }
        )
    return items


def _responses_tools(body: JSONObject) -> list[JSONObject]:
    raw = body.get("tools")
    if not isinstance(raw, list):
        legacy = body.get("functions")
        raw = (
            [{"type": "function", "function": f} for f in legacy]
            if isinstance(legacy, list)
            else []
        )
    tools: list[JSONObject] = []
    for tool in raw:
        if not isinstance(tool, dict) or tool.get("type", "function") not in _CHAT_TOOL_TYPES:
            continue
        if tool.get("type") == "custom" and isinstance(tool.get("custom"), dict):
            custom = tool["custom"]
            out: JSONObject = {"type": "custom", "name": str(custom.get("name", ""))}
            for key in ("description", "format"):
                if key in custom:
                    out[key] = custom[key]
            tools.append(out)
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        out = {"type": "function", "name": function["name"]}
        if isinstance(function.get("description"), str):
            out["description"] = function["description"]
        parameters = function.get("parameters")
        out["parameters"] = (
            parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
        )
        out["strict"] = function.get("strict") is True
        tools.append(out)
    return tools


def _responses_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools")
            mode = allowed.get("mode") if isinstance(allowed, dict) else None
            return "required" if mode == "required" else "auto"
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str):
            return {"type": "function", "name": name}
    return None


def _text_format(response_format: Any) -> JSONObject | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    spec = response_format.get("json_schema")
    if kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        out: JSONObject = {
            "type": "json_schema",
            "name": str(spec.get("name") or "output"),
            "schema": spec["schema"],
        }
        if isinstance(spec.get("strict"), bool):
            out["strict"] = spec["strict"]
        return out
    return None
