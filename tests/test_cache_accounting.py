"""Cached input tokens, read from every provider format and shown in each client dialect's own
usage fields (official SDK parsers), and `cache_control` across formats.

The simulated providers report cached tokens for a prefix they saw recently (see
`proxy.simulate.prompt_cache`), so the second turn of a conversation is the one to look at.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest
from codex_sims import codex_keys, seed_store
from conftest import Clients
from support import Daemon, config_text, request_lines

from proxy.config import parse_config
from proxy.errors import ConfigError
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.translate.dropped import DROPPED_ANTHROPIC_TO_OPENAI, DROPPED_ANTHROPIC_TOOL_FIELDS

StartDaemon = Callable[[str], Awaitable[Daemon]]
SYSTEM = "You are a careful coding assistant. Answer briefly and precisely. " * 120
BREAKPOINT = {"type": "ephemeral"}


def sim(fmt: str) -> SimulatedProvider:
    """A provider of `fmt`; "deepseek" and "kimi" are OpenAI-format ones reporting cached tokens
    their own way (`prompt_cache_hit_tokens`; a top-level `cached_tokens`)."""
    if fmt in ("deepseek", "kimi"):
        model = {"deepseek": "deepseek-chat", "kimi": "kimi-k2"}[fmt]
        return SimulatedProvider(fmt, "openai", [model], usage_style=fmt)
    model = {"openai": "glm-5", "anthropic": "MiniMax-M2.5", "codex": "gpt-5.2"}[fmt]
    name = {"openai": "zai", "anthropic": "minimax", "codex": "openai-codex"}[fmt]
    return SimulatedProvider(name, fmt, [model])


def route(provider: SimulatedProvider) -> dict[str, str]:
    return {"default": f"{provider.name},{provider.models[0]}"}


def one_provider(sims: dict[str, SimulatedProvider], tmp_path: Path) -> str:
    """The config for the one simulated provider in `sims` (a codex one signed in)."""
    provider = next(iter(sims.values()))
    extra = {}
    if provider.format == "codex":
        extra[provider.name] = codex_keys(provider, seed_store(provider, tmp_path / "auth.json"))
    return config_text(sims, route(provider), provider_extra=extra)


TURNS = ("Question 2", "Question 3")  # the same length: the same prompt size


def anthropic_request(turn: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "auto",
        "max_tokens": 128,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": BREAKPOINT}],
        "messages": [
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {
                "role": "user",
                "content": [{"type": "text", "text": turn, "cache_control": BREAKPOINT}],
            },
        ],
        **({"stream": True} if stream else {}),
    }


async def anthropic_turn(
    client: anthropic.AsyncAnthropic, turn: str, stream: bool
) -> anthropic.types.Usage:
    request = anthropic_request(turn)
    if stream:
        async with client.messages.stream(**request) as events:
            return (await events.get_final_message()).usage
    return (await client.messages.create(**request)).usage


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", ["anthropic", "openai", "codex", "deepseek", "kimi"])
async def test_anthropic_client_sees_cache_reads(
    clients: Clients, daemon: StartDaemon, fmt: str, stream: bool, tmp_path: Path
) -> None:
    """`cache_read_input_tokens` from an Anthropic provider as is; from OpenAI's
    `prompt_tokens_details.cached_tokens` (DeepSeek's `prompt_cache_hit_tokens`, Kimi's
    `cached_tokens`) and Responses' `input_tokens_details.cached_tokens` with `input_tokens`
    excluding them (Anthropic's meaning)."""
    async with run_simulated([sim(fmt)]) as sims:
        proxy = await daemon(one_provider(sims, tmp_path))
        client = clients.anthropic(proxy)
        cold = await anthropic_turn(client, TURNS[0], stream)
        warm = await anthropic_turn(client, TURNS[1], stream)
    assert cold.cache_read_input_tokens == 0
    assert (warm.cache_read_input_tokens or 0) > 1024
    if fmt == "anthropic":  # the breakpoints' prefix is written, then read
        assert (cold.cache_creation_input_tokens or 0) > 1024
        assert warm.input_tokens == cold.input_tokens  # after the last breakpoint
        return
    # OpenAI formats report no cache writes; the cached part leaves `input_tokens`.
    assert cold.cache_creation_input_tokens == warm.cache_creation_input_tokens == 0
    assert warm.input_tokens + (warm.cache_read_input_tokens or 0) == cold.input_tokens


def openai_messages(turn: str, breakpoint: bool) -> list[dict[str, Any]]:
    last: Any = turn
    if breakpoint:  # the OpenRouter/LiteLLM convention, kept for Anthropic providers
        last = [{"type": "text", "text": turn, "cache_control": BREAKPOINT}]
    system: Any = SYSTEM
    if breakpoint:
        system = [{"type": "text", "text": SYSTEM, "cache_control": BREAKPOINT}]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": last},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", ["openai", "anthropic", "codex"])
async def test_openai_client_sees_cached_tokens(
    clients: Clients, daemon: StartDaemon, fmt: str, stream: bool, tmp_path: Path
) -> None:
    """`usage.prompt_tokens_details.cached_tokens`, with `prompt_tokens` counting every prompt
    token (OpenAI's meaning), whatever the provider's format."""
    async with run_simulated([sim(fmt)]) as sims:
        proxy = await daemon(one_provider(sims, tmp_path))
        client = clients.openai(proxy)
        usages = []
        for turn in TURNS:
            messages = openai_messages(turn, breakpoint=fmt == "anthropic")
            if stream:
                chunks = await client.chat.completions.create(
                    model="auto",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = None
                async for chunk in chunks:
                    usage = chunk.usage or usage
            else:
                completion = await client.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
                usage = completion.usage
            assert usage is not None and usage.prompt_tokens_details is not None
            usages.append(usage)
    cold, warm = usages
    assert cold.prompt_tokens_details is not None and warm.prompt_tokens_details is not None
    assert cold.prompt_tokens_details.cached_tokens == 0
    assert (warm.prompt_tokens_details.cached_tokens or 0) > 1024
    assert warm.prompt_tokens >= (warm.prompt_tokens_details.cached_tokens or 0)
    assert warm.prompt_tokens == cold.prompt_tokens


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "codex"])
async def test_responses_client_sees_cached_tokens(
    clients: Clients, daemon: StartDaemon, fmt: str, tmp_path: Path
) -> None:
    """`usage.input_tokens_details.cached_tokens` for the Responses API (`responses.create`)."""
    async with run_simulated([sim(fmt)]) as sims:
        proxy = await daemon(one_provider(sims, tmp_path))
        client = clients.openai(proxy)
        usages = []
        for turn in TURNS:
            content: Any = turn
            if fmt == "anthropic":
                content = [{"type": "input_text", "text": turn, "cache_control": BREAKPOINT}]
            response = await client.responses.create(
                model="auto",
                instructions=SYSTEM,
                input=[
                    {"role": "user", "content": "First question"},
                    {"role": "assistant", "content": "First answer"},
                    {"role": "user", "content": content},
                ],  # type: ignore[list-item]
            )
            assert response.usage is not None
            usages.append(response.usage)
    cold, warm = usages
    assert cold.input_tokens_details.cached_tokens == 0
    if fmt == "anthropic":
        # The Responses -> Anthropic translation has no breakpoints to carry: nothing cached.
        assert warm.input_tokens_details.cached_tokens == 0
        return
    assert warm.input_tokens_details.cached_tokens > 1024
    assert warm.input_tokens == cold.input_tokens


async def test_cache_control_passes_through_to_anthropic_format_unchanged(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([sim("anthropic")]) as sims:
        proxy = await daemon(config_text(sims, route(sims["minimax"])))
        await clients.anthropic(proxy).messages.create(**anthropic_request("Hi"))  # type: ignore[call-overload]
        sent = sims["minimax"].requests[-1].body
    request = anthropic_request("Hi")
    assert sent["system"] == request["system"]
    assert sent["messages"] == request["messages"]


async def test_cache_control_is_dropped_for_openai_format(
    clients: Clients, daemon: StartDaemon
) -> None:
    """OpenAI-compatible providers cache by prefix on their own and have no breakpoint field:
    every `cache_control` is dropped (listed in `proxy/translate/dropped.py`)."""
    async with run_simulated([sim("openai")]) as sims:
        proxy = await daemon(config_text(sims, route(sims["zai"])))
        request = anthropic_request("Hi")
        request["cache_control"] = BREAKPOINT
        request["tools"] = [
            {"name": "run", "input_schema": {"type": "object"}, "cache_control": BREAKPOINT}
        ]
        await clients.anthropic(proxy).messages.create(**request)
        sent = sims["zai"].requests[-1].body
    assert b"cache_control" not in orjson.dumps(sent)
    assert "cache_control" in DROPPED_ANTHROPIC_TO_OPENAI
    assert "cache_control" in DROPPED_ANTHROPIC_TOOL_FIELDS


async def test_the_conversation_key_becomes_prompt_cache_key_where_a_provider_takes_it(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    """Breakpoints cannot reach an OpenAI-format provider, but the conversation can be named:
    OpenAI routes requests with one `prompt_cache_key` to the same cache. Codex providers always
    get it (the Codex CLI sends it too); an OpenAI-compatible one when configured
    (`prompt_cache_key = true`), since strict servers refuse unknown fields. The key is the
    conversation's digest, never the client's session id."""
    sims_list = [sim("codex"), sim("openai"), SimulatedProvider("cerebras", "openai", ["llama"])]
    async with run_simulated(sims_list) as sims:
        codex = sims["openai-codex"]
        extra = {
            "openai-codex": codex_keys(codex, seed_store(codex, tmp_path / "auth.json")),
            "zai": "prompt_cache_key = true",
        }
        text = config_text(sims, {"default": "openai-codex,gpt-5.2"}, provider_extra=extra)
        proxy = await daemon(text)
        client = clients.anthropic(proxy)
        for session, model in (
            ("s-1", "auto"),
            ("s-1", "auto"),
            ("s-2", "auto"),
            ("s-1", "zai,glm-5"),
            ("s-1", "cerebras,llama"),
        ):
            request = anthropic_request("Hi")
            request["model"] = model
            request["metadata"] = {"user_id": f'{{"session_id": "{session}"}}'}
            await client.messages.create(**request)
        first, again, other = (r.body["prompt_cache_key"] for r in codex.requests)
        assert first == again != other and len(first) == 32
        assert "s-1" not in first
        assert len(sims["zai"].requests[0].body["prompt_cache_key"]) == 32
        assert "prompt_cache_key" not in sims["cerebras"].requests[0].body


def test_prompt_cache_key_is_refused_for_anthropic_format() -> None:
    text = (
        '[router]\ndefault = "m,x"\n[[providers]]\nname = "m"\nformat = "anthropic"\n'
        'api_base_url = "https://m.example/anthropic"\nmodels = ["x"]\n'
        "prompt_cache_key = true\n"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text, {})
    assert error.value.key == "providers[0].prompt_cache_key"


async def test_the_request_log_shows_cached_tokens_and_prices_them_at_the_cached_rate(
    clients: Clients, daemon: StartDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    """The second turn reads the first one's prefix from the provider's cache: the log line
    says so (`cache=read/written`) and the cost prices reads and writes at their own rates."""
    caplog.set_level(logging.INFO, logger="llmproxy.requests")
    prices = (
        '[providers.capabilities."MiniMax-M2.5"]\nprice_in = 1.0\nprice_out = 4.0\n'
        "price_cache_read = 0.1\nprice_cache_write = 1.25"
    )
    async with run_simulated([sim("anthropic")]) as sims:
        proxy = await daemon(
            config_text(sims, route(sims["minimax"]), provider_extra={"minimax": prices})
        )
        client = clients.anthropic(proxy)
        answers = []
        for turn in TURNS:
            raw = await client.messages.with_raw_response.create(**anthropic_request(turn))
            answers.append((await raw.parse(), raw.headers["x-llmproxy-cost"]))
    lines = [r.getMessage() for r in await request_lines(caplog, 2)]
    assert len(lines) == 2
    for line, (message, cost) in zip(lines, answers, strict=True):
        usage = message.usage
        read, written = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
        assert f"in={usage.input_tokens} out={usage.output_tokens} cache={read}/{written}" in line
        expected = (
            usage.input_tokens * 1.0 + usage.output_tokens * 4.0 + read * 0.1 + written * 1.25
        ) / 1e6
        assert float(cost) == pytest.approx(expected, rel=1e-6)
    assert (answers[1][0].usage.cache_read_input_tokens or 0) > 1024


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_cache_writes_served_to_an_openai_client_are_recorded_streamed_or_not(
    clients: Clients, daemon: StartDaemon, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    """The request's record (log line, cost, journal, metrics) counts the usage the answer's
    events reported, not a re-reading of the body rendered for the client: an OpenAI `usage`
    has no field for cache writes (they are part of `prompt_tokens`), yet they are recorded and
    priced as writes, whole or streamed alike."""
    caplog.set_level(logging.INFO, logger="llmproxy.requests")
    prices = (
        '[providers.capabilities."MiniMax-M2.5"]\nprice_in = 1.0\nprice_out = 4.0\n'
        "price_cache_read = 0.1\nprice_cache_write = 1.25"
    )
    async with run_simulated([sim("anthropic")]) as sims:
        proxy = await daemon(
            config_text(sims, route(sims["minimax"]), provider_extra={"minimax": prices})
        )
        client = clients.openai(proxy)
        messages: Any = openai_messages(TURNS[0], breakpoint=True)
        cost = None
        if stream:
            chunks = await client.chat.completions.create(
                model="auto",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = None
            async for chunk in chunks:
                usage = chunk.usage or usage
        else:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=messages
            )
            usage, cost = raw.parse().usage, raw.headers["x-llmproxy-cost"]
    assert usage is not None
    (line,) = [r.getMessage() for r in await request_lines(caplog, 1)]
    found = re.search(r"in=(\d+) out=(\d+) cache=(\d+)/(\d+)", line)
    assert found is not None, line
    uncached, out, read, written = (int(n) for n in found.groups())
    assert written > 1024 and read == 0
    assert uncached + read + written == usage.prompt_tokens
    assert out == usage.completion_tokens
    if cost is not None:
        expected = (uncached * 1.0 + out * 4.0 + read * 0.1 + written * 1.25) / 1e6
        assert float(cost) == pytest.approx(expected, rel=1e-6)
