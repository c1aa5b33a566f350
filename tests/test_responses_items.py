"""Responses input items through the daemon (issue 11, item 7): Codex CLI 0.169's default
models send `tools: []` and every tool in an `additional_tools` input item (OpenAI's
`AdditionalToolsItemParam`); every other item type is translated, dropped for a listed reason,
or refused with a 400 that names it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.simulate import SimulatedProvider, run_simulated
from proxy.translate.responses_dropped import DROPPED_RESPONSES_ITEM_TYPES

StartDaemon = Callable[[str], Awaitable[Daemon]]
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                   "required": ["command"]},
}
AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents",
    "tools": [{"type": "function", "name": "spawn", "description": "Start one",
               "parameters": {"type": "object", "properties": {"task": {"type": "string"}},
                              "required": ["task"]}}],
}


def codex_input(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "additional_tools", "role": "developer", "tools": list(tools)},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "list the files"}]},
    ]


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_tools_declared_in_an_additional_tools_item_reach_the_model(
    clients: Clients, daemon: StartDaemon, fmt: str
) -> None:
    async with run_simulated([SimulatedProvider("zai", fmt, ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        response = await clients.openai(proxy).responses.create(
            model="auto", tools=[], input=codex_input(SHELL), store=False  # type: ignore[arg-type]
        )
        (sent,) = sims["zai"].requests
    names = [t.get("name") or t["function"]["name"] for t in sent.body["tools"]]
    assert names == ["shell"]
    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["shell"]  # type: ignore[union-attr]


async def test_a_namespaced_tool_in_an_additional_tools_item_is_restored_in_the_stream(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        stream = await clients.openai(proxy).responses.create(
            model="auto", tools=[], input=codex_input(AGENTS), stream=True, store=False  # type: ignore[arg-type]
        )
        done = [event async for event in stream if event.type == "response.output_item.done"]
    calls = [e.item for e in done if e.item.type == "function_call"]
    assert [(c.name, c.namespace) for c in calls] == [("spawn", "multi_agent_v1")]  # type: ignore[union-attr]


async def test_an_unknown_input_item_type_is_refused_with_a_400_that_names_it(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        items = [{"type": "hologram_call", "id": "h1"}, *codex_input(SHELL)[1:]]
        with pytest.raises(openai.BadRequestError) as caught:
            await clients.openai(proxy).responses.create(
                model="auto", input=items, store=False  # type: ignore[arg-type]
            )
        assert sims["zai"].requests == ()
    assert "'hologram_call'" in caught.value.message


def test_every_input_item_type_of_the_current_responses_api_has_a_decision() -> None:
    # The `type` of every member of the current `ResponseInputItem` union (OpenAI's OpenAPI
    # spec as the official SDKs generate it, with `AdditionalToolsItemParam`,
    # `ResponseConfigurationUpdateItemParam`, `CompactionTrigger`, `Program` and
    # `ProgramOutput`); each is translated or listed as dropped with its reason.
    spec_item_types = {
        "message", "function_call", "function_call_output", "custom_tool_call",
        "custom_tool_call_output", "additional_tools", "reasoning", "item_reference",
        "compaction", "file_search_call", "computer_call", "computer_call_output",
        "web_search_call", "image_generation_call", "code_interpreter_call",
        "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
        "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
        "mcp_approval_request", "mcp_approval_response", "mcp_call", "tool_search_call",
        "tool_search_output", "configuration_update", "compaction_trigger", "program",
        "program_output",
    }
    translated = {"message", "function_call", "function_call_output", "custom_tool_call",
                  "custom_tool_call_output", "additional_tools", "configuration_update"}
    assert spec_item_types - translated <= DROPPED_RESPONSES_ITEM_TYPES


async def test_tools_loaded_by_a_tool_search_and_a_configuration_update_reach_the_model(
    clients: Clients, daemon: StartDaemon
) -> None:
    items = [
        {"type": "configuration_update", "reasoning": {"effort": "high"}},
        {"type": "tool_search_call", "id": "ts1", "call_id": "ts1", "execution": "server",
         "arguments": {"query": "shell"}, "status": "completed"},
        {"type": "tool_search_output", "id": "tso1", "call_id": "ts1", "execution": "server",
         "status": "completed", "tools": [SHELL]},
        *codex_input()[1:],
    ]
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        await clients.openai(proxy).responses.create(
            model="auto", tools=[], input=items, reasoning={"effort": "low"},  # type: ignore[arg-type]
            store=False,
        )
        (sent,) = sims["zai"].requests
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["shell"]
    assert sent.body["reasoning_effort"] == "high"  # the conversation's latest setting
