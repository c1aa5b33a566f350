"""Responses tools that flat function calling cannot express, and how they survive the trip.

Chat completions and Anthropic know one kind of client tool: a named function with a JSON schema.
The Responses API (and Codex, which uses it) adds two more that must keep working when a request
is served by such a provider:

- `namespace` tools group functions under a shared name (Codex: `multi_agent_v1`). Each inner
  function travels as `{namespace}__{name}`; a call to that flat name comes back as a
  `function_call` carrying `namespace` and the inner `name` again.
- `custom` (free-form) tools take one raw string, optionally constrained by a grammar (Codex's
  `apply_patch`). They travel as a function with a single string parameter `input` whose
  description carries the grammar; a call comes back as a `custom_tool_call` with that string.

Restoring needs to know what the request declared: `ToolIndex.of(request)` reads it, and both
the stream encoder and the accumulator's Responses rendering use the same index and the same
`call_item`, so a call looks the same either way. A call the upstream itself made as a custom
call (`CustomToolCall`) is a custom call whatever the index says. Hosted tools (`web_search`,
`file_search`, `code_interpreter`, ...) run on OpenAI's servers and are dropped for other
providers (see `responses_dropped.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.frozen import field, frozen
from proxy.translate.responses_dropped import RESPONSES_CLIENT_TOOL_TYPES
from proxy.types import CustomToolCall, JSONObject, ToolCallDelta, ToolCallStart

NAMESPACE_SEPARATOR = "__"
"""Joins a namespace and a function name: `[A-Za-z0-9_-]` is all every dialect allows."""

CUSTOM_INPUT_KEY = "input"
"""The one parameter a custom tool gets when it travels as a function."""


def flat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


@frozen
class RestoredCall:
    """A flat tool name as the Responses client declared it."""

    name: str
    namespace: str | None = None
    custom: bool = False


@frozen
class ToolIndex:
    """Flat tool names that need restoring for a Responses client: namespaced or custom."""

    special: Mapping[str, RestoredCall] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ToolIndex:
        special: dict[str, RestoredCall] = {}
        for tool in declared_tools(body):
            kind = tool.get("type")
            name = tool.get("name")
            if kind == "custom" and isinstance(name, str):
                special[name] = RestoredCall(name, None, True)
            elif kind == "namespace" and isinstance(name, str):
                for inner in _dicts(tool.get("tools")):
                    inner_name = inner.get("name")
                    if isinstance(inner_name, str):
                        special[flat_name(name, inner_name)] = RestoredCall(
                            inner_name, name, inner.get("type") == "custom"
                        )
        return cls(special)

    def restore(self, name: str) -> RestoredCall:
        return self.special.get(name) or RestoredCall(name)


def declared_tools(body: Mapping[str, Any]) -> list[JSONObject]:
    """Every tool a Responses request declares: `tools`, then the tools of each input item that
    carries some: `additional_tools` (OpenAI's `AdditionalToolsItemParam`; Codex CLI 0.169 sends
    `tools: []` and puts all its tools there for `gpt-6.1-sol`, `gpt-5.6-*` and `gpt-6-*`) and
    `tool_search_output` (tools a tool search loaded mid-conversation)."""
    tools = list(_dicts(body.get("tools")))
    items = body.get("input")
    if isinstance(items, list):
        for item in _dicts(items):
            if item.get("type") in TOOL_CARRYING_ITEMS:
                tools.extend(_dicts(item.get("tools")))
    return tools


TOOL_CARRYING_ITEMS = frozenset({"additional_tools", "tool_search_output"})


def function_tools(tools: Any) -> list[JSONObject]:
    """Responses client tools -> chat-completions function tools (namespaces flattened, custom
    tools as one-string functions). Hosted tools are left out."""
    out: list[JSONObject] = []
    for tool in _dicts(tools):
        kind = tool.get("type")
        if kind not in RESPONSES_CLIENT_TOOL_TYPES:
            continue  # hosted tools: see responses_dropped.py
        if kind == "namespace" and isinstance(tool.get("name"), str):
            for inner in _dicts(tool.get("tools")):
                function = _function(inner, tool["name"])
                if function is not None:
                    out.append(function)
        elif kind in ("function", "custom"):
            function = _function(tool, None)
            if function is not None:
                out.append(function)
    return out


def _function(tool: JSONObject, namespace: str | None) -> JSONObject | None:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return None
    function: JSONObject = {"name": flat_name(namespace, name)}
    description = tool.get("description")
    if tool.get("type") == "custom":
        function["description"] = _custom_description(description, tool.get("format"))
        function["parameters"] = {
            "type": "object",
            "properties": {CUSTOM_INPUT_KEY: {"type": "string"}},
            "required": [CUSTOM_INPUT_KEY],
            "additionalProperties": False,
        }
    else:
        if isinstance(description, str) and description:
            function["description"] = description
        parameters = tool.get("parameters")
        function["parameters"] = (
            parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
        )
    return {"type": "function", "function": function}


def _custom_description(description: Any, fmt: Any) -> str:
    text = description if isinstance(description, str) else ""
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax = fmt.get("syntax", "")
        definition = fmt.get("definition", "")
        text += (
            f"\n\nPut the raw tool input in `{CUSTOM_INPUT_KEY}`. It must follow this "
            f"{syntax} grammar:\n{definition}"
        )
    else:
        text += f"\n\nPut the raw tool input, as free-form text, in `{CUSTOM_INPUT_KEY}`."
    return text.strip()


def custom_arguments(tool_input: Any) -> str:
    """A custom call's raw input -> the JSON arguments of its function form."""
    return orjson.dumps(
        {CUSTOM_INPUT_KEY: tool_input if isinstance(tool_input, str) else ""}
    ).decode()


def function_form(call: CustomToolCall) -> tuple[ToolCallStart, ToolCallDelta]:
    """A custom call as the function call a dialect without custom tools shows."""
    return (
        ToolCallStart(call.index, call.id, call.name),
        ToolCallDelta(call.index, custom_arguments(call.input)),
    )


def custom_input(arguments: str) -> str:
    """The function form's JSON arguments -> the custom call's raw input. Arguments that are not
    `{"input": "<text>"}` are handed over as they are: the client's tool shows the model what it
    got, which is more useful than an empty input."""
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get(CUSTOM_INPUT_KEY), str):
        return str(parsed[CUSTOM_INPUT_KEY])
    return arguments


def call_item(
    index: ToolIndex,
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
    *,
    custom: bool = False,
) -> JSONObject:
    """The Responses output item for a call to the flat `name` with function-form `arguments`:
    a custom call when the request declared `name` custom or the upstream made it one."""
    restored = index.restore(name)
    item: JSONObject
    if restored.custom or custom:
        item = {
            "id": item_id.replace("fc_", "ctc_", 1),
            "type": "custom_tool_call",
            "status": status,
            "call_id": call_id,
            "name": restored.name,
            "input": custom_input(arguments),
        }
    else:
        item = {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "call_id": call_id,
            "name": restored.name,
            "arguments": arguments,
        }
    if restored.namespace is not None:
        item["namespace"] = restored.namespace
    return item


def _dicts(value: Any) -> list[JSONObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
