"""Behaviours no other test pinned (issue 11, "Tests to add"), each through the daemon with
simulated providers and the official SDKs where a client is involved."""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest
from conftest import Clients
from support import CLIENT_KEY, Daemon, config_text

import proxy.management
from proxy.security.auth import ClientKeys
from proxy.simulate import (
    CutAfter,
    FaultPlan,
    SimulatedProvider,
    openai_context_length,
    reasoning_text,
    reply_text,
    run_simulated,
)
from proxy.simulate.scripts import DEFAULT_CHUNK_CHARS, chunk

StartDaemon = Callable[[str], Awaitable[Daemon]]
QUESTION = "Please tell me a long story about failover"
HELLO = [{"role": "user", "content": QUESTION}]


async def sse_payloads(proxy: Daemon, body: dict[str, object]) -> list[dict[str, object]]:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + "/v1/chat/completions", json=body, headers=headers) as response,
    ):
        raw = await response.read()
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


async def test_a_reasoning_to_reasoning_takeover_hides_the_new_reasoning(
    clients: Clients, daemon: StartDaemon
) -> None:
    first = SimulatedProvider(
        "zai", "openai", ["glm-5"], reasoning=True, plan=FaultPlan([CutAfter(2)])
    )
    second = SimulatedProvider("deepseek", "openai", ["deepseek-r1"], reasoning=True)
    async with run_simulated([first, second]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|deepseek,deepseek-r1"}))
        # The official SDK's stream helper parses every chunk and folds them into one
        # completion (it raises on a malformed chunk or a broken tool-call sequence).
        reasoning, text = [], []
        async with clients.openai(proxy).chat.completions.stream(
            model="auto",
            messages=HELLO,  # type: ignore[arg-type]
        ) as stream:
            async for event in stream:
                if event.type == "chunk" and event.chunk.choices:
                    thought = getattr(event.chunk.choices[0].delta, "reasoning_content", None)
                    reasoning.append(thought or "")
                elif event.type == "content.delta":
                    text.append(event.delta)
            completion = await stream.get_final_completion()
        (takeover,) = sims["deepseek"].requests
    zai_thought = reasoning_text("zai", "glm-5", QUESTION)
    answer = reply_text("deepseek", "deepseek-r1", QUESTION)
    assert "".join(reasoning) == "".join(chunk(zai_thought, DEFAULT_CHUNK_CHARS)[:2])  # the first's
    assert "".join(text) == answer
    assert completion.choices[0].message.content == answer
    assert completion.choices[0].finish_reason == "stop"
    assert takeover.chunks_sent > len(chunk(answer, DEFAULT_CHUNK_CHARS))  # it did think, unseen


async def test_max_tokens_above_the_models_cap_is_clamped_through_the_daemon(
    clients: Clients, daemon: StartDaemon
) -> None:
    caps = '[providers.capabilities."glm-5"]\ncontext_window = 200000\nmax_output_tokens = 8192'
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(
            config_text(sims, {"default": "zai,glm-5"}, provider_extra={"zai": caps})
        )
        await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,
            max_tokens=100_000,  # type: ignore[arg-type]
        )
        (sent,) = sims["zai"].requests
    assert sent.body["max_tokens"] == 8192


async def test_a_context_length_refusal_with_three_targets_tries_the_largest_context_next(
    clients: Clients, daemon: StartDaemon
) -> None:
    small = SimulatedProvider(
        "zai", "openai", ["glm-5"], plan=FaultPlan.always(openai_context_length())
    )
    medium = SimulatedProvider("groq", "openai", ["llama-70b"])
    large = SimulatedProvider("gemini", "openai", ["gemini-pro"])

    def window(model: str, size: int) -> str:
        return f'[providers.capabilities."{model}"]\ncontext_window = {size}'

    async with run_simulated([small, medium, large]) as sims:
        proxy = await daemon(
            config_text(
                sims,
                {"default": "zai,glm-5|groq,llama-70b|gemini,gemini-pro"},
                provider_extra={
                    "zai": window("glm-5", 128_000),
                    "groq": window("llama-70b", 131_072),
                    "gemini": window("gemini-pro", 1_000_000),
                },
            )
        )
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto",
            messages=HELLO,  # type: ignore[arg-type]
        )
        assert sims["groq"].requests == ()
    assert raw.headers["x-llmproxy-attempts"] == "zai,glm-5=400;gemini,gemini-pro=ok"


@pytest.mark.parametrize("client_format", ["anthropic", "openai"])
async def test_unsigned_thinking_never_reaches_an_anthropic_provider_that_checks_signatures(
    clients: Clients, daemon: StartDaemon, client_format: str
) -> None:
    # History whose thinking came from an OpenAI-format provider: no signature to send back.
    thought = "I should greet them."
    provider = SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"], check_signatures=True)
    async with run_simulated([provider]) as sims:
        proxy = await daemon(config_text(sims, {"default": "minimax,MiniMax-M2"}))
        if client_format == "anthropic":
            history = [
                {"role": "user", "content": "hello"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": thought, "signature": ""},
                        {"type": "text", "text": "Hi!"},
                    ],
                },
                {"role": "user", "content": QUESTION},
            ]
            message = await clients.anthropic(proxy).messages.create(
                model="auto",
                max_tokens=256,
                messages=history,  # type: ignore[arg-type]
            )
            assert message.stop_reason == "end_turn"
        else:
            history = [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "Hi!", "reasoning_content": thought},
                {"role": "user", "content": QUESTION},
            ]
            completion = await clients.openai(proxy).chat.completions.create(
                model="auto",
                messages=history,  # type: ignore[arg-type]
            )
            assert completion.choices[0].finish_reason == "stop"
        (sent,) = sims["minimax"].requests
    assert thought.encode() not in orjson.dumps(sent.body)
    assert sent.status == 200


# --- constant-time secret comparisons -----------------------------------------------------------


def test_client_keys_are_compared_with_hmac_compare_digest() -> None:
    compare = inspect.signature(ClientKeys.match).parameters["compare"].default
    assert compare is hmac.compare_digest


async def test_the_management_secret_is_compared_with_hmac_compare_digest(
    daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(proxy.management.hmac, "compare_digest", spy)
    secret = "mgmt-secret-0123456789abcdef"
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        text = config_text(sims, {"default": "zai,glm-5"}) + (
            f'[management]\nenabled = true\nsecret_key = "{secret}"\n'
        )
        proxy_daemon = await daemon(text)
        url = proxy_daemon.url + "/v0/management/config"
        async with aiohttp.ClientSession() as session:
            tries = (("wrong", 401), ("a-much-longer-wrong-key" * 4, 401), (secret, 200))
            for key, status in tries:
                async with session.get(url, headers={"x-management-key": key}) as response:
                    assert response.status == status
    assert len(seen) == 3
    # digests of the presented key: equal lengths whatever was sent, so timing says nothing
    assert {len(a) for a, _ in seen} == {len(b) for _, b in seen} == {32}
