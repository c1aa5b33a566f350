"""Responses input items through the daemon (issue 11, item 7): Codex CLI 0.169's default
models send `tools: []` and every tool in an `additional_tools` input item (OpenAI's
`AdditionalToolsItemParam`); every other item type is translated, dropped for a listed reason,
or refused with a 400 that names it."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import orjson
import pytest
from conftest import Clients
from raw_http import post
from support import CLIENT_KEY, Daemon, config_text
from test_responses_endpoint import FOLLOWUP, capture, fold

from proxy.simulate import SimulatedProvider, run_simulated
from proxy.translate.responses_dropped import (
    COMPACTION_NOTE,
    DROPPED_RESPONSES_ITEM_TYPES,
    REJECTED_RESPONSES_ITEM_TYPES,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}
AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents",
    "tools": [
        {
            "type": "function",
            "name": "spawn",
            "description": "Start one",
            "parameters": {
                "type": "object",
                "properties": {"task": {"type": "string"}},
                "required": ["task"],
            },
        }
    ],
}


def codex_input(*tools: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "additional_tools", "role": "developer", "tools": list(tools)},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "list the files"}],
        },
    ]


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_tools_declared_in_an_additional_tools_item_reach_the_model(
    clients: Clients, daemon: StartDaemon, fmt: str
) -> None:
    async with run_simulated([SimulatedProvider("zai", fmt, ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        response = await clients.openai(proxy).responses.create(
            model="auto",
            tools=[],
            input=codex_input(SHELL),
            store=False,  # type: ignore[arg-type]
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
            model="auto",
            tools=[],
            input=codex_input(AGENTS),
            stream=True,
            store=False,  # type: ignore[arg-type]
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
                model="auto",
                input=items,
                store=False,  # type: ignore[arg-type]
            )
        assert sims["zai"].requests == ()
    assert "'hologram_call'" in caught.value.message


def test_every_input_item_type_of_the_current_responses_api_has_a_decision() -> None:
    # The `type` of every member of the current `ResponseInputItem` union (OpenAI's OpenAPI
    # spec as the official SDKs generate it, with `AdditionalToolsItemParam`,
    # `ResponseConfigurationUpdateItemParam`, `CompactionTrigger`, `Program` and
    # `ProgramOutput`); each is translated or listed as dropped with its reason.
    spec_item_types = {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "additional_tools",
        "reasoning",
        "item_reference",
        "compaction",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
        "configuration_update",
        "compaction_trigger",
        "program",
        "program_output",
    }
    translated = {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "additional_tools",
        "configuration_update",
        "shell_call",
        "shell_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "compaction",
    }
    rejected = set(REJECTED_RESPONSES_ITEM_TYPES)
    assert rejected == {"item_reference", "computer_call", "computer_call_output"}
    assert spec_item_types - translated - rejected <= DROPPED_RESPONSES_ITEM_TYPES
    assert not (translated | rejected) & DROPPED_RESPONSES_ITEM_TYPES


async def test_tools_loaded_by_a_tool_search_and_a_configuration_update_reach_the_model(
    clients: Clients, daemon: StartDaemon
) -> None:
    items = [
        {"type": "configuration_update", "reasoning": {"effort": "high"}},
        {
            "type": "tool_search_call",
            "id": "ts1",
            "call_id": "ts1",
            "execution": "server",
            "arguments": {"query": "shell"},
            "status": "completed",
        },
        {
            "type": "tool_search_output",
            "id": "tso1",
            "call_id": "ts1",
            "execution": "server",
            "status": "completed",
            "tools": [SHELL],
        },
        *codex_input()[1:],
    ]
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        await clients.openai(proxy).responses.create(
            model="auto",
            tools=[],
            input=items,
            reasoning={"effort": "low"},  # type: ignore[arg-type]
            store=False,
        )
        (sent,) = sims["zai"].requests
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["shell"]
    assert sent.body["reasoning_effort"] == "high"  # the conversation's latest setting


# What Codex's own tools leave in a conversation (OpenAI's `ShellCall`, `ShellCallOutput`,
# `LocalShellCall`, `LocalShellCallOutput`, `ApplyPatchCall`, `ApplyPatchCallOutput`), appended
# to the captured Codex follow-up turn, and a remote compaction before them.
SHELL_ITEMS = [
    {
        "type": "shell_call",
        "call_id": "call_sh",
        "status": "completed",
        "action": {"commands": ["ls", "cat notes.txt"], "timeout_ms": 5000},
    },
    {
        "type": "shell_call_output",
        "call_id": "call_sh",
        "output": [
            {"stdout": "notes.txt\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
            {"stdout": "", "stderr": "cat: denied", "outcome": {"type": "exit", "exit_code": 1}},
        ],
    },
    {
        "type": "local_shell_call",
        "id": "lsh_1",
        "call_id": "call_lsh",
        "status": "completed",
        "action": {"type": "exec", "command": ["pwd"], "env": {}},
    },
    {"type": "local_shell_call_output", "id": "call_lsh", "output": '{"output": "/work"}'},
    {
        "type": "apply_patch_call",
        "call_id": "call_ap",
        "status": "completed",
        "operation": {"type": "update_file", "path": "notes.txt", "diff": "@@\n-a\n+b\n"},
    },
    {
        "type": "apply_patch_call_output",
        "call_id": "call_ap",
        "status": "completed",
        "output": "Updated notes.txt",
    },
]
COMPACTION = {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAABo-secret"}


def codex_turn_with_shell_items() -> dict[str, Any]:
    captured = capture(FOLLOWUP)
    body: dict[str, Any] = captured["body"]
    body["input"] = [COMPACTION, *body["input"], *SHELL_ITEMS]
    return body


async def send_codex_turn(proxy: Daemon, body: dict[str, Any]) -> Any:
    return await post(
        proxy.url + "/v1/responses",
        body,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        key=None,
    )


async def test_shell_and_patch_items_reach_an_openai_provider_as_tool_calls_and_results(
    daemon: StartDaemon,
) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        answer = fold(await send_codex_turn(proxy, codex_turn_with_shell_items()))
        (sent,) = sims["zai"].requests
    assert answer["status"] == "completed"
    messages = sent.body["messages"]
    assert COMPACTION_NOTE in messages[0]["content"]  # the system prompt says what is missing
    assert "gAAAA" not in str(sent.body)
    calls = [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for m in messages
        if m["role"] == "assistant"
        for c in m.get("tool_calls") or []
    ]
    assert calls[-3:] == [
        ("call_sh", "shell", SHELL_ITEMS[0]["action"]),
        ("call_lsh", "local_shell", SHELL_ITEMS[2]["action"]),
        ("call_ap", "apply_patch", SHELL_ITEMS[4]["operation"]),
    ]
    results = {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    assert results["call_sh"] == "notes.txt\n\n[exit code 0]\n[stderr]\ncat: denied\n[exit code 1]"
    assert results["call_lsh"] == '{"output": "/work"}'
    assert results["call_ap"] == "status: completed\nUpdated notes.txt"
    # each result follows the assistant message holding its call
    roles = [m["role"] for m in messages[-6:]]
    assert roles == ["assistant", "tool", "assistant", "tool", "assistant", "tool"]


async def test_shell_and_patch_items_reach_an_anthropic_provider_as_tool_use_pairs(
    daemon: StartDaemon,
) -> None:
    async with run_simulated([SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "minimax,MiniMax-M2"}))
        answer = fold(await send_codex_turn(proxy, codex_turn_with_shell_items()))
        (sent,) = sims["minimax"].requests
    assert answer["status"] == "completed"
    assert COMPACTION_NOTE in sent.body["system"]
    pairs = []
    for assistant, user in itertools.pairwise(sent.body["messages"]):
        if assistant["role"] != "assistant":
            continue
        uses = [b for b in assistant["content"] if b["type"] == "tool_use"]
        (result,) = [b for b in user["content"] if b["type"] == "tool_result"]
        pairs.append((uses[0]["name"], uses[0]["input"], result["tool_use_id"] == uses[0]["id"]))
    assert pairs[0][0] == "exec_command"  # the capture's own round trip
    assert pairs[1:] == [
        ("shell", SHELL_ITEMS[0]["action"], True),
        ("local_shell", SHELL_ITEMS[2]["action"], True),
        ("apply_patch", SHELL_ITEMS[4]["operation"], True),
    ]


@pytest.mark.parametrize(
    "item",
    [
        {"type": "item_reference", "id": "msg_stored"},
        {
            "type": "computer_call_output",
            "call_id": "call_pc",
            "output": {"type": "computer_screenshot", "image_url": "https://example.com/s.png"},
        },
    ],
)
async def test_items_no_chat_provider_can_be_given_are_refused_with_a_400_naming_them(
    clients: Clients, daemon: StartDaemon, item: dict[str, Any]
) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        with pytest.raises(openai.BadRequestError) as caught:
            await clients.openai(proxy).responses.create(
                model="auto",
                input=[*codex_input(SHELL), item],
                store=False,  # type: ignore[arg-type]
            )
        assert sims["zai"].requests == ()
    assert f"item type {item['type']!r}" in caught.value.message
    assert REJECTED_RESPONSES_ITEM_TYPES[item["type"]] in caught.value.message
