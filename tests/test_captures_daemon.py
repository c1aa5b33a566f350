"""Real Claude Code requests, POSTed as captured (body, path with `?beta=true`, headers with
`anthropic-beta`), through the real daemon.

To an OpenAI-format provider ("zai", a reasoning model), the upstream must receive exactly the
pure translator's output pinned in tests/data/golden/<name>.openai.json: the daemon adds nothing
but what the transport owns. To an Anthropic-format provider ("minimax"), the upstream must
receive the captured body with only `model` replaced, and the betas in `anthropic-beta`. Either
way the streamed answer is the simulated model's predicted reply, as Anthropic SSE.
(The Codex captures are Responses API bodies: a later issue.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from raw_http import RawResponse, post
from support import CLIENT_KEY, Daemon, config_text

from proxy.simulate import SimulatedProvider, run_simulated, tool_result_text
from proxy.tokens import estimate_request_tokens
from proxy.types import ClientAPI

StartDaemon = Callable[[str], Awaitable[Daemon]]

DATA = Path(__file__).parent / "data"
CAPTURES = DATA / "captures"
GOLDEN = DATA / "golden"
# What a proxy must not copy from a captured request: hop-by-hop framing and the credential
# (replaced by this daemon's client key, in the same header the capture used).
NOT_REPLAYED = {
    "content-length",
    "connection",
    "accept-encoding",
    "host",
    "x-api-key",
    "authorization",
}
TRANSPORT_FIELDS = {"stream", "stream_options", "model"}


def load(name: str) -> dict[str, Any]:
    capture: dict[str, Any] = orjson.loads((CAPTURES / name).read_bytes())
    return capture


def claude_code(path: str) -> list[str]:
    return sorted(
        p.name for p in CAPTURES.glob("claude-code-*.json") if load(p.name)["path"] == path
    )


MESSAGES = claude_code("/v1/messages")
COUNT_TOKENS = claude_code("/v1/messages/count_tokens")


def replay_headers(capture: dict[str, Any]) -> dict[str, str]:
    headers = {k: v for k, v in capture["headers"].items() if k.lower() not in NOT_REPLAYED}
    if "authorization" in capture["headers"]:
        headers["authorization"] = f"Bearer {CLIENT_KEY}"
    else:
        headers["x-api-key"] = CLIENT_KEY
    return headers


async def replay(proxy: Daemon, capture: dict[str, Any]) -> RawResponse:
    url = f"{proxy.url}{capture['path']}?{capture['query']}"
    return await post(url, capture["body"], headers=replay_headers(capture), key=None)


def fold(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The message a stream describes, checking the event grammar on the way."""
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop", names
    assert all(name == data["type"] for name, data in events)
    message: dict[str, Any] = events[0][1]["message"]
    open_index: int | None = None
    for name, data in events[1:-1]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(message["content"])
            open_index = data["index"]
            message["content"].append({**data["content_block"], "partial_json": ""})
        elif name == "content_block_delta":
            assert data["index"] == open_index
            block, delta = message["content"][data["index"]], data["delta"]
            kind = delta["type"]
            if kind == "text_delta":
                block["text"] += delta["text"]
            elif kind == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif kind == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                assert kind == "input_json_delta"
                block["partial_json"] += delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        elif name == "message_delta":
            assert open_index is None
            message.update(data["delta"])
            message["usage"].update(data["usage"])
        else:
            assert name == "ping", name
    for block in message["content"]:
        partial = block.pop("partial_json")
        if block["type"] == "tool_use":
            block["input"] = orjson.loads(partial) if partial else {}
    return message


def expected_blocks(sim: SimulatedProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The content the simulated model's reply becomes for an Anthropic client."""
    reply = sim.reply_for(body)
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning_text})
    if reply.text:
        blocks.append({"type": "text", "text": reply.full_text})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)}
        for c in reply.tool_calls
    ]
    return blocks


def visible(message: dict[str, Any]) -> list[dict[str, Any]]:
    keep = {"type", "text", "thinking", "id", "name", "input"}
    return [{k: v for k, v in b.items() if k in keep} for b in message["content"]]


def test_there_are_captures_of_both_kinds() -> None:
    assert len(MESSAGES) >= 9
    assert len(COUNT_TOKENS) >= 2
    assert all(load(name)["query"] == "beta=true" for name in MESSAGES + COUNT_TOKENS)


@pytest.mark.parametrize("name", MESSAGES)
async def test_capture_to_openai_provider_sends_the_golden_translation(
    daemon: StartDaemon, name: str
) -> None:
    capture = load(name)
    zai = SimulatedProvider("zai", "openai", ["glm-5"], reasoning=True)
    async with run_simulated([zai]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        response = await replay(proxy, capture)
        (record,) = sims["zai"].requests
    assert response.status == 200, response.body[:500]
    assert response.content_type == "text/event-stream"

    golden = orjson.loads((GOLDEN / f"{Path(name).stem}.openai.json").read_bytes())
    sent = record.body

    def strip(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k not in TRANSPORT_FIELDS}

    assert strip(sent) == strip(golden)
    assert (sent["model"], sent["stream"], sent["stream_options"]) == (
        "glm-5",
        True,
        {"include_usage": True},
    )
    assert "anthropic-beta" not in record.headers
    assert record.headers["authorization"] == "Bearer sim-key"

    message = fold(response.events())
    assert visible(message) == expected_blocks(zai, sent)
    reply = zai.reply_for(sent)
    assert message["stop_reason"] == ("tool_use" if reply.tool_calls else "end_turn")
    assert message["usage"]["output_tokens"] == reply.output_tokens
    assert message["usage"]["input_tokens"] == reply.input_tokens


@pytest.mark.parametrize("name", MESSAGES)
async def test_capture_to_anthropic_provider_passes_through(daemon: StartDaemon, name: str) -> None:
    capture = load(name)
    # The captured thinking signatures are Anthropic's, which the simulator cannot verify.
    minimax = SimulatedProvider(
        "minimax", "anthropic", ["MiniMax-M2"], reasoning=True, check_signatures=False
    )
    async with run_simulated([minimax]) as sims:
        proxy = await daemon(config_text(sims, {"default": "minimax,MiniMax-M2"}))
        response = await replay(proxy, capture)
        (record,) = sims["minimax"].requests
    assert response.status == 200, response.body[:500]

    assert record.body == {**capture["body"], "model": "MiniMax-M2"}
    assert list(record.body) == list(capture["body"])  # same fields, same order
    assert record.headers["anthropic-beta"] == capture["headers"]["anthropic-beta"]
    assert record.headers["anthropic-version"] == capture["headers"]["anthropic-version"]
    assert record.headers["x-api-key"] == "sim-key"
    assert CLIENT_KEY not in str(dict(record.headers))
    assert "x-claude-code-session-id" not in record.headers

    message = fold(response.events())
    reply = minimax.reply_for(record.body)
    assert visible(message) == expected_blocks(minimax, record.body)
    signatures = [b["signature"] for b in message["content"] if b["type"] == "thinking"]
    assert signatures == ([reply.signature] if reply.reasoning else [])  # signed upstream
    assert message["stop_reason"] == ("tool_use" if reply.tool_calls else "end_turn")
    assert message["usage"]["output_tokens"] == reply.output_tokens


@pytest.mark.parametrize("name", COUNT_TOKENS)
async def test_count_tokens_capture(daemon: StartDaemon, name: str) -> None:
    capture = load(name)
    reference = orjson.loads((DATA / "tokens" / "captures.json").read_bytes())
    text_tokens = reference[f"{Path(name).stem}#0"]
    zai = SimulatedProvider("zai", "openai", ["glm-5"])
    async with run_simulated([zai]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        response = await replay(proxy, capture)
        assert sims["zai"].requests == ()  # counted locally, never sent upstream
    assert response.status == 200, response.body[:500]
    assert response.content_type == "application/json"
    counted = response.json()
    assert set(counted) == {"input_tokens"}
    assert counted["input_tokens"] == estimate_request_tokens(capture["body"], ClientAPI.ANTHROPIC)
    # The text alone is `text_tokens` (pinned reference count); message framing adds a few.
    assert text_tokens < counted["input_tokens"] <= text_tokens + 50


FOLLOWUPS = [name for name in MESSAGES if "tool-result-followup" in name]


@pytest.mark.parametrize("name", FOLLOWUPS)
async def test_claude_code_tool_result_followup_to_zai(daemon: StartDaemon, name: str) -> None:
    """The reverse of the MiniMax case: Claude Code's tool loop, routed to Z.ai (OpenAI format),
    answers the tool result, with the `toolu_` id carried to the provider on both sides."""
    capture = load(name)
    use, result = capture["body"]["messages"][-2]["content"][0], capture["body"]["messages"][-1]
    (tool_result,) = result["content"]
    zai = SimulatedProvider("zai", "openai", ["glm-5"])
    async with run_simulated([zai]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        response = await replay(proxy, capture)
        (record,) = sims["zai"].requests
    assert response.status == 200, response.body[:500]
    assistant, tool = record.body["messages"][-2:]
    assert [c["id"] for c in assistant["tool_calls"]] == [use["id"]]
    assert orjson.loads(assistant["tool_calls"][0]["function"]["arguments"]) == use["input"]
    assert tool == {"role": "tool", "tool_call_id": use["id"], "content": tool_result["content"]}
    message = fold(response.events())
    assert visible(message) == [
        {
            "type": "text",
            "text": tool_result_text("zai", "glm-5", use["name"], tool_result["content"]),
        }
    ]
    assert message["stop_reason"] == "end_turn"
