"""Inbound Anthropic `/v1/messages` specifics: `?beta=true`, the key in `x-api-key` or
`Authorization: Bearer`, any `anthropic-version`, `count_tokens`, and `/v1/models` in the shape
both SDKs read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest
from conftest import Clients
from raw_http import post
from support import CLIENT_KEY, Daemon, config_text

from proxy.simulate import SimulatedProvider, reply_text, run_simulated
from proxy.tokens import estimate_request_tokens
from proxy.types import ClientAPI

StartDaemon = Callable[[str], Awaitable[Daemon]]

MODEL = "claude-opus-4-8"
PROMPT = [{"role": "user", "content": "Hello from the messages endpoint"}]
BETAS = ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"]


def minimax() -> SimulatedProvider:
    return SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"])


def zai() -> SimulatedProvider:
    return SimulatedProvider("zai", "openai", ["glm-5"])


ROUTES = {"minimax": {"default": "minimax,MiniMax-M2"}, "zai": {"default": "zai,glm-5"}}


def bearer_client(proxy: Daemon, token: str = CLIENT_KEY) -> anthropic.AsyncAnthropic:
    """The current SDK with `auth_token` sends `Authorization: Bearer` and no `x-api-key`."""
    return anthropic.AsyncAnthropic(base_url=proxy.url, auth_token=token, max_retries=0)


async def test_key_in_x_api_key_or_bearer(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated([minimax()]) as sims:
        proxy = await daemon(config_text(sims, ROUTES["minimax"]))
        by_header = await clients.anthropic(proxy).messages.create(
            model=MODEL,
            max_tokens=64,
            messages=PROMPT,  # type: ignore[arg-type]
        )
        bearer, wrong = bearer_client(proxy), bearer_client(proxy, "wrong")
        try:
            by_bearer = await bearer.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=PROMPT,  # type: ignore[arg-type]
            )
            with pytest.raises(anthropic.AuthenticationError) as wrong_bearer:
                await wrong.messages.create(
                    model=MODEL,
                    max_tokens=64,
                    messages=PROMPT,  # type: ignore[arg-type]
                )
        finally:
            await bearer.close()
            await wrong.close()
        with pytest.raises(anthropic.AuthenticationError) as wrong_header:
            await clients.anthropic(proxy, "wrong").messages.create(
                model=MODEL,
                max_tokens=64,
                messages=PROMPT,  # type: ignore[arg-type]
            )
        assert len(sims["minimax"].requests) == 2
        upstream_headers = [r.headers for r in sims["minimax"].requests]
    expected = reply_text("minimax", "MiniMax-M2", PROMPT[0]["content"])
    assert [b.text for b in by_header.content if b.type == "text"] == [expected]
    assert [b.text for b in by_bearer.content if b.type == "text"] == [expected]
    for caught in (wrong_bearer, wrong_header):
        body: Any = caught.value.body
        assert body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
    # The client's key never travels upstream; the provider's does, in its own header.
    for headers in upstream_headers:
        assert headers["x-api-key"] == "sim-key"
        assert "authorization" not in headers


@pytest.mark.parametrize("version", ["2023-06-01", "2023-01-01", "2099-12-31", None], ids=str)
async def test_any_anthropic_version_is_accepted(daemon: StartDaemon, version: str | None) -> None:
    headers = {} if version is None else {"anthropic-version": version}
    body = {"model": MODEL, "max_tokens": 64, "messages": PROMPT}
    async with run_simulated([minimax(), zai()]) as sims:
        for route in ("minimax", "zai"):
            proxy = await daemon(config_text(sims, ROUTES[route]))
            response = await post(proxy.url + "/v1/messages", body, headers=headers)
            assert response.status == 200, response.body
        (upstream,) = sims["minimax"].requests
    # Same format: the client's version is forwarded; none given -> the one we speak.
    assert upstream.headers["anthropic-version"] == (version or "2023-06-01")


@pytest.mark.parametrize("provider", ["minimax", "zai"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_beta_endpoint_and_betas_header(
    clients: Clients, daemon: StartDaemon, provider: str, stream: bool
) -> None:
    """`client.beta.messages` posts to `/v1/messages?beta=true` with `anthropic-beta`: forwarded
    to an Anthropic-format provider, meaningless (and not sent) to an OpenAI-format one."""
    async with run_simulated([minimax(), zai()]) as sims:
        proxy = await daemon(config_text(sims, ROUTES[provider]))
        client = clients.anthropic(proxy)
        params: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 64,
            "messages": PROMPT,
            "betas": BETAS,
        }
        if stream:
            async with client.beta.messages.stream(**params) as events:
                message: Any = await events.get_final_message()
        else:
            message = await client.beta.messages.create(**params)
        (record,) = sims[provider].requests
    model = "MiniMax-M2" if provider == "minimax" else "glm-5"
    assert [b.text for b in message.content if b.type == "text"] == [
        reply_text(provider, model, PROMPT[0]["content"])
    ]
    assert message.stop_reason == "end_turn"
    if provider == "minimax":
        assert record.headers["anthropic-beta"] == ",".join(BETAS)
    else:
        assert "anthropic-beta" not in record.headers


async def test_count_tokens_through_both_sdk_paths(clients: Clients, daemon: StartDaemon) -> None:
    tools = [
        {
            "name": "read_file",
            "description": "Read a file",
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        }
    ]
    system = "You are a careful coding agent. " * 20
    async with run_simulated([zai()]) as sims:
        proxy = await daemon(config_text(sims, ROUTES["zai"]))
        client = clients.anthropic(proxy)
        bare = await client.messages.count_tokens(model=MODEL, messages=PROMPT)  # type: ignore[arg-type]
        full = await client.beta.messages.count_tokens(
            model=MODEL,
            messages=PROMPT,
            system=system,
            tools=tools,  # type: ignore[arg-type]
            betas=["token-counting-2024-11-01"],
        )
        assert sims["zai"].requests == ()
    assert bare.input_tokens == estimate_request_tokens(
        {"model": MODEL, "messages": PROMPT}, ClientAPI.ANTHROPIC
    )
    assert 5 <= bare.input_tokens <= 30
    assert full.input_tokens == estimate_request_tokens(
        {"model": MODEL, "messages": PROMPT, "system": system, "tools": tools},
        ClientAPI.ANTHROPIC,
    )
    assert full.input_tokens > bare.input_tokens + 100  # the system prompt is ~140 tokens


async def test_count_tokens_needs_no_max_tokens_but_needs_messages(daemon: StartDaemon) -> None:
    async with run_simulated([zai()]) as sims:
        proxy = await daemon(config_text(sims, ROUTES["zai"]))
        url = proxy.url + "/v1/messages/count_tokens?beta=true"
        ok = await post(url, {"model": MODEL, "messages": PROMPT})
        bad = await post(url, {"model": MODEL})
    assert ok.status == 200 and ok.json()["input_tokens"] > 0
    assert bad.status == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


async def test_models_for_both_sdks(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated([minimax(), zai()]) as sims:
        proxy = await daemon(
            config_text(
                sims,
                ROUTES["zai"],
                mappings=[("claude-*", "minimax,MiniMax-M2"), ("fast", "zai,glm-5")],
            )
        )
        openai_page = await clients.openai(proxy).models.list()
        anthropic_client = clients.anthropic(proxy)
        anthropic_ids = [m.id async for m in anthropic_client.models.list()]
        beta_ids = [m.id async for m in anthropic_client.beta.models.list()]
        anthropic_page = await anthropic_client.models.list(limit=100)
    expected = ["minimax,MiniMax-M2", "zai,glm-5", "fast"]  # globs are not listable ids
    assert [m.id for m in openai_page.data] == expected
    assert all(isinstance(m, openai.types.Model) and m.object == "model" for m in openai_page.data)
    assert {m.owned_by for m in openai_page.data} == {"minimax", "zai", "llmproxy"}
    assert anthropic_ids == beta_ids == expected
    assert anthropic_page.has_more is False
    assert anthropic_page.first_id == expected[0] and anthropic_page.last_id == expected[-1]
    for info in anthropic_page.data:
        assert info.type == "model"
        assert info.display_name == info.id
        assert info.created_at.year >= 1970


ODD_BODIES = {
    # JSON-valid shapes that once crashed a set lookup (`type` must be hashable there).
    "tool-type-list": (
        "anthropic",
        {"tools": [{"type": ["custom"], "name": "t", "input_schema": {"type": "object"}}]},
    ),
    "part-type-list": (
        "anthropic",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": ["image"], "text": "x"},
                        {"type": "text", "text": "Hello"},
                    ],
                }
            ]
        },
    ),
    "openai-part-type-object": (
        "openai",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": {"image_url": 1}}, {"type": "text", "text": "Hello"}],
                }
            ]
        },
    ),
}


@pytest.mark.parametrize("provider", ["minimax", "zai"])
@pytest.mark.parametrize("case", list(ODD_BODIES))
async def test_odd_shapes_are_answered_not_crashed(
    daemon: StartDaemon, case: str, provider: str
) -> None:
    client, extra = ODD_BODIES[case]
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": PROMPT, **extra}
    path = "/v1/messages" if client == "anthropic" else "/v1/chat/completions"
    async with run_simulated([minimax(), zai()]) as sims:
        proxy = await daemon(config_text(sims, ROUTES[provider]))
        response = await post(proxy.url + path, body)
    assert response.status < 500, response.body
