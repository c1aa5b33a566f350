"""The core promise, end to end: the official `openai` SDK talks to the real daemon, which walks
its chain over simulated providers on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.simulate import (
    FaultPlan,
    Hang,
    Reset,
    SimulatedProvider,
    Status,
    invalid_request,
    openai_rate_limit,
    reply_text,
    run_simulated,
    zai_http_500,
)

StartDaemon = Callable[[str], Awaitable[Daemon]]
PROMPT = [{"role": "user", "content": "Hello there"}]


def primary(plan: FaultPlan) -> SimulatedProvider:
    return SimulatedProvider("zai", "openai", ["glm-5"], plan=plan, reasoning=False)


def backup() -> SimulatedProvider:
    return SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"])


async def ask(client: openai.AsyncOpenAI) -> tuple[str, dict[str, str]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=PROMPT,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers)


DEFAULT = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (openai_rate_limit(retry_after=30), "429"),
        (Status(500), "500"),
        (zai_http_500(), "500"),
        (Status(503), "503"),
        (Status(529), "529"),
        (Status(408), "408"),
        (Status(409), "409"),
    ],
    ids=["429", "500", "zai-HTTP-500-text", "503", "529", "408", "409"],
)
async def test_falls_back_past_failing_status(
    clients: Clients, daemon: StartDaemon, fault: Status, code: str
) -> None:
    async with run_simulated([primary(FaultPlan.always(fault)), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        text, headers = await ask(clients.openai(proxy))
    assert text == reply_text("cerebras", "llama-3.3-70b", "Hello there")
    assert headers["x-llmproxy-provider"] == "cerebras"
    assert headers["x-llmproxy-model"] == "llama-3.3-70b"
    assert headers["x-llmproxy-attempts"].startswith(f"zai,glm-5={code};")
    assert headers["x-llmproxy-attempts"].endswith("cerebras,llama-3.3-70b=ok")


async def test_zai_500_in_body_text_of_a_400_still_falls_back(
    clients: Clients, daemon: StartDaemon
) -> None:
    """Z.ai sometimes wraps an upstream 500 as `HTTP 500 - ...` text in another status."""
    fault = Status(400, body="HTTP 500 - Internal Server Error: upstream model crashed")
    async with run_simulated([primary(FaultPlan.always(fault)), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        _, headers = await ask(clients.openai(proxy))
    assert headers["x-llmproxy-provider"] == "cerebras"


async def test_falls_back_when_connection_refused(clients: Clients, daemon: StartDaemon) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with run_simulated([backup()]) as sims:
        dead = (
            '[[providers]]\nname = "zai"\n'
            f'api_base_url = "http://127.0.0.1:{dead_port}/v1"\nmodels = ["glm-5"]\n'
        )
        proxy = await daemon(config_text(sims, DEFAULT, extra_providers=dead))
        _, headers = await ask(clients.openai(proxy))
    assert headers["x-llmproxy-attempts"] == "zai,glm-5=connection_error;cerebras,llama-3.3-70b=ok"


async def test_falls_back_on_connection_reset(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated([primary(FaultPlan.always(Reset())), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        _, headers = await ask(clients.openai(proxy))
    # a reset before any byte is retried once on the same target, then the chain moves on
    assert headers["x-llmproxy-attempts"] == (
        "zai,glm-5=connection_error;zai,glm-5=connection_error;cerebras,llama-3.3-70b=ok"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hung_provider_is_abandoned_within_the_configured_timeout(
    clients: Clients, daemon: StartDaemon, stream: bool
) -> None:
    timeouts = "response_headers_ms = 700\nfirst_token_ms = 700\nfirst_token_ms_per_1k_input = 0"
    async with run_simulated([primary(FaultPlan.always(Hang())), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT, timeouts=timeouts))
        started = time.monotonic()
        if stream:
            chunks = await clients.openai(proxy).chat.completions.create(
                model="auto",
                messages=PROMPT,
                stream=True,  # type: ignore[arg-type]
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            text, _ = await ask(clients.openai(proxy))
        elapsed = time.monotonic() - started
        assert len(sims["zai"].requests) == 1
    assert text == reply_text("cerebras", "llama-3.3-70b", "Hello there")
    assert 0.6 < elapsed < 3.0


async def test_plain_invalid_request_is_returned_unchanged_without_fallback(
    clients: Clients,
    daemon: StartDaemon,
) -> None:
    fault = invalid_request("openai", "messages[0].content: unsupported part type 'video'")
    async with run_simulated([primary(FaultPlan.always(fault)), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(clients.openai(proxy))
        assert sims["cerebras"].requests == ()
    assert "unsupported part type 'video'" in caught.value.message
    assert caught.value.response.headers["x-llmproxy-attempts"] == "zai,glm-5=400"
    assert caught.value.body == fault.body["error"]  # type: ignore[index]


async def test_streaming_falls_back_before_the_first_byte(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([primary(FaultPlan.always(Status(500))), backup()]) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto",
            messages=PROMPT,
            stream=True,  # type: ignore[arg-type]
        )
        chunks = [chunk async for chunk in raw.parse()]
    assert (
        raw.headers["x-llmproxy-attempts"]
        == "zai,glm-5=500;zai,glm-5=500;cerebras,llama-3.3-70b=streaming"
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_text("cerebras", "llama-3.3-70b", "Hello there")
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_every_target_failing_gives_last_error_class_and_attempts(
    clients: Clients,
    daemon: StartDaemon,
) -> None:
    plan = FaultPlan.always(openai_rate_limit(retry_after=60))
    async with run_simulated(
        [
            primary(FaultPlan.always(Status(500))),
            SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"], plan=plan),
        ]
    ) as sims:
        proxy = await daemon(config_text(sims, DEFAULT))
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(clients.openai(proxy))
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "rate_limited"
    assert [a["target"] for a in error["attempts"]] == [
        "zai,glm-5",
        "zai,glm-5",
        "cerebras,llama-3.3-70b",
    ]
    assert caught.value.response.headers["retry-after"] == "60"


async def test_codex_provider_without_a_sign_in_is_reported_unavailable_and_skipped(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    """A declared provider that cannot serve (here: no ChatGPT sign-in stored) is skipped with
    its reason in the attempts, and the chain goes on without sending it anything."""
    codex = (
        '[[providers]]\nname = "openai-codex"\napi_base_url = "https://chatgpt.com/backend-api"\n'
        f'models = ["gpt-5.2"]\nauth_file = "{tmp_path / "no-sign-in.json"}"\n'
    )
    routes = {
        "default": "zai,glm-5|cerebras,llama-3.3-70b",
        "think": "openai-codex,gpt-5.2|zai,glm-5",
    }
    async with run_simulated([primary(FaultPlan()), backup()]) as sims:
        proxy = await daemon(config_text(sims, routes, extra_providers=codex))
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto",
            messages=PROMPT,
            reasoning_effort="high",  # type: ignore[arg-type]
        )
    assert raw.headers["x-llmproxy-attempts"] == "openai-codex,gpt-5.2=unavailable;zai,glm-5=ok"


async def test_wrong_client_key_is_rejected_in_openai_dialect(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated([backup()]) as sims:
        proxy = await daemon(config_text(sims, {"default": "cerebras,llama-3.3-70b"}))
        bad = clients.openai(proxy, "wrong")
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="auto", messages=PROMPT)  # type: ignore[arg-type]
        assert sims["cerebras"].requests == ()


async def test_models_lists_targets_and_aliases(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated([primary(FaultPlan()), backup()]) as sims:
        proxy = await daemon(
            config_text(sims, DEFAULT, mappings=[("fastest", "cerebras,llama-3.3-70b")])
        )
        page = await clients.openai(proxy).models.list()
    ids = [m.id for m in page.data]
    assert ids == ["zai,glm-5", "cerebras,llama-3.3-70b", "fastest"]
