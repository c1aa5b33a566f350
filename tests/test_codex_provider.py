"""A `format = "codex"` provider end to end: the official SDKs talk to the real daemon, which
talks to a simulated ChatGPT backend (Responses SSE, empty header values, expiring sign-ins,
usage limits)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from codex_sims import codex_keys, seed_store
from conftest import Clients
from support import Daemon, config_text

from proxy.config import ProviderConfig, parse_config
from proxy.errors import ConfigError
from proxy.providers.codex import codex_url
from proxy.simulate import (
    FaultPlan,
    SimulatedProvider,
    codex_usage_limit,
    reply_text,
    run_simulated,
    tool_result_text,
)
from proxy.simulate.codex_app import RATE_LIMIT_HEADERS
from proxy.types import ProviderFormat

StartDaemon = Callable[[str], Awaitable[Daemon]]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
}


def codex(**kwargs: Any) -> SimulatedProvider:
    return SimulatedProvider("codex", "codex", ["gpt-5.2"], **kwargs)


def backup() -> SimulatedProvider:
    return SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"])


async def start(
    daemon: StartDaemon,
    sims: dict[str, SimulatedProvider],
    tmp_path: Path,
    chain: str = "codex,gpt-5.2",
    *,
    expires_in: float | None = None,
    shape: str = "nested",
) -> Daemon:
    store = seed_store(sims["codex"], tmp_path / "auth.json", expires_in=expires_in, shape=shape)  # type: ignore[arg-type]
    extra = {"codex": codex_keys(sims["codex"], store)}
    return await daemon(config_text(sims, {"default": chain}, provider_extra=extra))


# --- chat and tools, both client dialects ------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_openai_client_chat_and_tool_round_trip(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, stream: bool
) -> None:
    async with run_simulated([codex()]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        client = clients.openai(proxy)
        text, _ = await ask_openai(client, [{"role": "user", "content": "Hello"}], stream)
        assert text == reply_text("codex", "gpt-5.2", "Hello")

        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        _, calls = await ask_openai(client, messages, stream, tools=[WEATHER])
        assert [(c["name"], c["arguments"]) for c in calls] == [
            ("get_weather", '{"city":"example city"}')
        ]
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": calls[0]["id"],
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": calls[0]["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "Sunny, 21C"},
        ]
        text, _ = await ask_openai(client, messages, stream, tools=[WEATHER])
        assert text == tool_result_text("codex", "gpt-5.2", "get_weather", "Sunny, 21C")

        sent = [r.body for r in sims["codex"].requests]
    last = sent[-1]
    assert last["stream"] is True and last["store"] is False
    assert [i["type"] for i in last["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert last["input"][1]["call_id"] == last["input"][2]["call_id"] == calls[0]["id"]
    assert last["tools"][0]["name"] == "get_weather"


async def ask_openai(
    client: openai.AsyncOpenAI, messages: list[Any], stream: bool, **extra: Any
) -> tuple[str, list[dict[str, str]]]:
    if not stream:
        completion = await client.chat.completions.create(model="auto", messages=messages, **extra)
        message = completion.choices[0].message
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or []
            if c.type == "function"
        ]
        return message.content or "", calls
    text: list[str] = []
    parts: dict[int, dict[str, str]] = {}
    chunks = await client.chat.completions.create(
        model="auto", messages=messages, stream=True, **extra
    )
    async for chunk in chunks:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                entry = parts.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
    return "".join(text), [parts[i] for i in sorted(parts)]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_client_chat_and_tool_round_trip(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, stream: bool
) -> None:
    async with run_simulated([codex()]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        client = clients.anthropic(proxy)
        message = await ask_anthropic(client, [{"role": "user", "content": "Hello"}], stream)
        assert message.content[0].type == "text"
        assert message.content[0].text == reply_text("codex", "gpt-5.2", "Hello")
        assert message.stop_reason == "end_turn"

        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        message = await ask_anthropic(client, messages, stream, tools=[ANTHROPIC_WEATHER])
        assert message.stop_reason == "tool_use"
        (call,) = [b for b in message.content if b.type == "tool_use"]
        assert (call.name, call.input) == ("get_weather", {"city": "example city"})
        messages += [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21C"}
                ],
            },
        ]
        message = await ask_anthropic(client, messages, stream, tools=[ANTHROPIC_WEATHER])
        assert message.content[0].type == "text"
        assert message.content[0].text == tool_result_text(
            "codex", "gpt-5.2", "get_weather", "Sunny, 21C"
        )
        last = sims["codex"].requests[-1].body
    # The reference proxy lost tool_use/tool_result history on this path; it must survive.
    assert [i["type"] for i in last["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert last["input"][2]["output"] == "Sunny, 21C"


async def ask_anthropic(
    client: anthropic.AsyncAnthropic, messages: list[Any], stream: bool, **extra: Any
) -> Any:
    if not stream:
        return await client.messages.create(
            model="auto", max_tokens=1024, messages=messages, **extra
        )
    async with client.messages.stream(
        model="auto", max_tokens=1024, messages=messages, **extra
    ) as events:
        return await events.get_final_message()


# --- what reaches the backend ------------------------------------------------------------------


async def test_backend_request_follows_the_chatgpt_rules(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async with run_simulated([codex()]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"},
            ],
            max_tokens=100,
            temperature=0.2,
            top_p=0.9,
            reasoning_effort="high",
        )
        (record,) = sims["codex"].requests
    body = record.body
    # max_output_tokens, temperature and top_p make the backend answer 400: never sent. The
    # conversation's key goes as prompt_cache_key, as the Codex CLI sends its thread id.
    assert set(body) == {
        "model",
        "instructions",
        "input",
        "reasoning",
        "store",
        "stream",
        "prompt_cache_key",
    }
    assert body["instructions"] == "Be brief."
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    headers = record.headers
    assert headers["authorization"].startswith("Bearer ")
    assert headers["chatgpt-account-id"] == "acct-codex"
    assert headers["openai-beta"] == "responses=experimental"
    assert headers["originator"] == "codex_cli_rs"
    assert headers["accept"] == "text/event-stream"


async def test_backend_answers_carry_an_empty_header_value() -> None:
    """The header that broke the reference proxy's SSE library is really sent (and everything
    else in this module runs with it)."""
    async with (
        run_simulated([codex()]) as sims,
        aiohttp.ClientSession() as session,
        session.post(sims["codex"].base_url + "/responses", json={}) as response,
    ):
        assert response.status == 401
        assert response.headers["x-codex-credits-balance"] == ""
    assert RATE_LIMIT_HEADERS["x-codex-credits-balance"] == ""


# --- sign-ins ----------------------------------------------------------------------------------


async def test_expired_token_is_refreshed_once_for_concurrent_requests(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async with run_simulated([codex()]) as sims:
        sims["codex"].account.refresh_delay = 0.1
        proxy = await start(daemon, sims, tmp_path, expires_in=-60)
        client = clients.openai(proxy)
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": f"Hello {n}"}]
                )
                for n in range(6)
            )
        )
        assert sims["codex"].account.refreshes == 1
        assert [a.choices[0].message.content for a in answers] == [
            reply_text("codex", "gpt-5.2", f"Hello {n}") for n in range(6)
        ]
        assert all(r.status == 200 for r in sims["codex"].requests)  # no request saw a 401


async def test_a_401_refreshes_once_and_retries(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async with run_simulated([codex()]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        sims["codex"].account.revoke_access_tokens()  # still unexpired by its claims
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
        assert raw.parse().choices[0].message.content == reply_text("codex", "gpt-5.2", "Hello")
        assert raw.headers["x-llmproxy-attempts"] == "codex,gpt-5.2=ok"
        assert [r.status for r in sims["codex"].requests] == [401, 200]
        assert sims["codex"].account.refreshes == 1


async def test_an_unusable_sign_in_falls_back(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async with run_simulated([codex(), backup()]) as sims:
        proxy = await start(daemon, sims, tmp_path, "codex,gpt-5.2|cerebras,llama-3.3-70b")
        sims["codex"].account.revoke_access_tokens()
        sims["codex"].account.issue()  # the stored refresh token is retired too
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
        assert raw.parse().choices[0].message.content == reply_text(
            "cerebras", "llama-3.3-70b", "Hello"
        )
        assert raw.headers["x-llmproxy-attempts"].startswith("codex,gpt-5.2=401;")


# --- usage limits ------------------------------------------------------------------------------


async def test_usage_limit_falls_back_and_is_a_quota(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    limited = codex(plan=FaultPlan.always(codex_usage_limit(resets_in_seconds=1800)))
    async with run_simulated([limited, backup()]) as sims:
        proxy = await start(daemon, sims, tmp_path, "codex,gpt-5.2|cerebras,llama-3.3-70b")
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}], stream=False
        )
        assert raw.headers["x-llmproxy-attempts"] == ("codex,gpt-5.2=429;cerebras,llama-3.3-70b=ok")


async def test_usage_limit_alone_reaches_the_client_with_its_reset(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    limited = codex(plan=FaultPlan.always(codex_usage_limit(resets_in_seconds=1800)))
    async with run_simulated([limited]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        with pytest.raises(openai.RateLimitError) as failed:
            await clients.openai(proxy).chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "Hello"}]
            )
    assert failed.value.response.headers["retry-after"] == "1800"
    assert "quota_exhausted" in str(failed.value.body)


@pytest.mark.parametrize("shape", ["nested", "flat"])
async def test_either_auth_json_shape_serves_requests(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, shape: str
) -> None:
    async with run_simulated([codex()]) as sims:
        proxy = await start(daemon, sims, tmp_path, shape=shape)
        completion = await clients.openai(proxy).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
    assert completion.choices[0].message.content == reply_text("codex", "gpt-5.2", "Hello")


async def test_without_a_sign_in_the_codex_target_is_skipped(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async with run_simulated([codex(), backup()]) as sims:
        extra = {"codex": codex_keys(sims["codex"], tmp_path / "never-imported.json")}
        routes = {"default": "codex,gpt-5.2|cerebras,llama-3.3-70b"}
        proxy = await daemon(config_text(sims, routes, provider_extra=extra))
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
        assert sims["codex"].requests == ()
    assert raw.headers["x-llmproxy-attempts"] == (
        "codex,gpt-5.2=unavailable;cerebras,llama-3.3-70b=ok"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_reasoning_summary_and_text_arrive_once(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, stream: bool
) -> None:
    """The backend repeats every piece of content in its summary events; the client must see
    each once (the reference proxy showed the text up to four times)."""
    async with run_simulated([codex(reasoning=True)]) as sims:
        proxy = await start(daemon, sims, tmp_path)
        message = await ask_anthropic(
            clients.anthropic(proxy), [{"role": "user", "content": "Hello"}], stream
        )
        reply = sims["codex"].reply_for(sims["codex"].requests[0].body)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == reply.reasoning_text
    assert message.content[1].text == reply.full_text == reply_text("codex", "gpt-5.2", "Hello")
    assert message.usage.output_tokens == reply.output_tokens


# --- configuration -----------------------------------------------------------------------------


def provider_config(extra: str) -> ProviderConfig:
    text = (
        f'[router]\ndefault = "openai-codex,gpt-5.2"\n[[providers]]\nname = "openai-codex"\n'
        f'models = ["gpt-5.2"]\n{extra}\n'
    )
    provider = parse_config(text, env={}).provider("openai-codex")
    assert provider is not None
    return provider


def test_codex_config_keys_and_urls() -> None:
    default = provider_config("")
    assert default.format is ProviderFormat.CODEX
    assert codex_url(default) == "https://chatgpt.com/backend-api/codex/responses"
    # The reference proxy's configs name api.openai.com as a placeholder for this provider.
    placeholder = provider_config('api_base_url = "https://api.openai.com/v1"')
    assert codex_url(placeholder) == "https://chatgpt.com/backend-api/codex/responses"
    custom = provider_config(
        'api_base_url = "https://gateway.example/codex/responses"\n'
        'auth_file = "~/tokens/work.json"\ntoken_endpoint = "https://auth.example/oauth/token"'
    )
    assert codex_url(custom) == "https://gateway.example/codex/responses"
    assert (custom.auth_file, custom.token_endpoint) == (
        "~/tokens/work.json",
        "https://auth.example/oauth/token",
    )
    with pytest.raises(ConfigError) as wrong:
        parse_config(
            '[router]\ndefault = "zai,glm-5"\n[[providers]]\nname = "zai"\n'
            'api_base_url = "https://api.z.ai/v4"\nmodels = ["glm-5"]\n'
            'auth_file = "x.json"\n',
            env={},
        )
    assert wrong.value.key == "providers[0].auth_file"
    with pytest.raises(ConfigError) as bad_url:
        provider_config('token_endpoint = "ftp://nope"')
    assert bad_url.value.key == "providers[0].token_endpoint"
