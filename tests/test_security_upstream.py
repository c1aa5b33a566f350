"""What comes back from upstreams is bounded and clean: one broken target never aborts the chain,
nothing secret or internal returns to a client, a huge answer is refused, an all-cooling chain
says when to retry, and idle connections are capped per peer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from codex_sims import codex_keys, seed_store
from raw_http import post
from security_support import Apps, FakeDNS, openai_error
from support import CLIENT_KEY, config_text

from proxy.config import parse_config
from proxy.simulate import FaultPlan, SimulatedProvider, Status, reply_text, run_simulated

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Hello"}]}
UPSTREAM_KEY = "sk-upstream-secret-0123456789"


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


@pytest.fixture
def debug_logging() -> Iterator[None]:
    logger = logging.getLogger("llmproxy")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(level)


def backup() -> SimulatedProvider:
    return SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"])


# --- 7. one broken target never aborts the chain -----------------------------------------------


async def test_a_corrupt_codex_token_store_fails_over(apps: Apps, tmp_path: Path) -> None:
    codex = SimulatedProvider("codex", "codex", ["gpt-5.2"])
    async with run_simulated([codex, backup()]) as sims:
        store = seed_store(sims["codex"], tmp_path / "auth.json")
        store.write_text("{ this is not json")
        text = config_text(
            sims,
            {"default": "codex,gpt-5.2|cerebras,llama-3.3-70b"},
            provider_extra={"codex": codex_keys(sims["codex"], store)},
        )
        proxy = await apps.start(parse_config(text, {}))
        answer = await post(proxy.url + "/v1/chat/completions", CHAT)
        reached = sims["codex"].requests
    assert answer.status == 200
    assert answer.json()["choices"][0]["message"]["content"] == reply_text(
        "cerebras", "llama-3.3-70b", "Hello"
    )
    assert answer.headers["x-llmproxy-attempts"] == (
        "codex,gpt-5.2=unavailable;cerebras,llama-3.3-70b=ok"
    )
    assert reached == ()


async def test_a_key_with_a_line_break_fails_over(apps: Apps) -> None:
    broken = SimulatedProvider("zai", "openai", ["glm-5"])
    async with run_simulated([broken, backup()]) as sims:
        text = config_text(sims, {"default": "zai,glm-5|cerebras,llama-3.3-70b"})
        text = text.replace('api_key = "sim-key"', 'api_key = "sk-abc\\r\\nx-injected: 1"', 1)
        proxy = await apps.start(parse_config(text, {}))
        answer = await post(proxy.url + "/v1/chat/completions", CHAT)
        reached = sims["zai"].requests
    assert answer.status == 200
    assert answer.headers["x-llmproxy-attempts"].startswith("zai,glm-5=auth_error;")
    assert reached == ()


# --- 8. nothing secret goes back ---------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401])
async def test_an_upstream_error_echoing_the_key_is_redacted(apps: Apps, status: int) -> None:
    echo = {
        "error": {
            "message": f"Incorrect API key provided: {UPSTREAM_KEY}. Check it.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    leaky = SimulatedProvider(
        "zai",
        "openai",
        ["glm-5"],
        api_key=UPSTREAM_KEY,
        plan=FaultPlan.always(Status(status, echo)),
    )
    async with run_simulated([leaky]) as sims:
        proxy = await apps.start(parse_config(config_text(sims, {"default": "zai,glm-5"}), {}))
        answer = await post(proxy.url + "/v1/chat/completions", CHAT)
    assert answer.status >= 400
    assert UPSTREAM_KEY.encode() not in answer.body
    assert UPSTREAM_KEY not in str(answer.headers)
    assert "Incorrect API key provided: [REDACTED]" in answer.body.decode()


async def _refused_detail(apps: Apps) -> str:
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    text = (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[security.ssrf_protection]\n'
        'allow_localhost = true\n[router]\ndefault = "p,m"\n'
        f'[[providers]]\nname = "p"\napi_base_url = "{dead}"\napi_key = "k"\n'
        'models = ["m"]\n'
    )
    proxy = await apps.start(parse_config(text, {}))
    answer = await post(proxy.url + "/v1/chat/completions", {**CHAT, "model": "p,m"})
    assert answer.status == 502
    attempts = openai_error(answer)["attempts"]
    return str(attempts[-1]["detail"])


async def test_attempt_details_name_no_internal_address(apps: Apps) -> None:
    detail = await _refused_detail(apps)
    assert detail.startswith("cannot connect to the provider")
    assert "127.0.0.1" not in detail and ":9" not in detail


async def test_the_operator_debugging_sees_the_address(apps: Apps, debug_logging: None) -> None:
    assert "127.0.0.1" in await _refused_detail(apps)


# --- 9. smaller ---------------------------------------------------------------------------------


async def test_a_huge_answer_is_refused_and_fails_over(apps: Apps) -> None:
    huge = SimulatedProvider(
        "zai", "openai", ["glm-5"], plan=FaultPlan.always(Status(200, {"pad": "x" * 300_000}))
    )
    async with run_simulated([huge, backup()]) as sims:
        text = config_text(
            sims,
            {"default": "zai,glm-5|cerebras,llama-3.3-70b"},
            security="[security.ssrf_protection]\nallow_localhost = true\n"
            "[security.limits]\nmax_answer_bytes = 200000",
        )
        proxy = await apps.start(parse_config(text, {}))
        answer = await post(proxy.url + "/v1/chat/completions", CHAT)
    assert answer.status == 200
    attempts = answer.headers["x-llmproxy-attempts"]
    assert attempts == "zai,glm-5=200;cerebras,llama-3.3-70b=ok"  # read no further, failed over


async def test_an_all_cooling_chain_says_when_to_retry(apps: Apps) -> None:
    limited = SimulatedProvider(
        "zai",
        "openai",
        ["glm-5"],
        plan=FaultPlan.always(
            Status(
                429,
                {
                    "error": {
                        "message": "You exceeded your current quota",
                        "type": "insufficient_quota",
                        "code": "insufficient_quota",
                    }
                },
            )
        ),
    )
    async with run_simulated([limited]) as sims:
        proxy = await apps.start(parse_config(config_text(sims, {"default": "zai,glm-5"}), {}))
        first = await post(proxy.url + "/v1/chat/completions", CHAT)
        second = await post(proxy.url + "/v1/chat/completions", CHAT)
        asked = len(sims["zai"].requests)
    assert first.status == 429
    assert second.status == 503
    assert asked == 1  # the second request was not sent: the target is cooling down
    assert 1 <= int(second.headers["Retry-After"]) <= 3600


async def test_idle_keep_alive_connections_are_capped_per_peer(apps: Apps) -> None:
    async with run_simulated([backup()]) as sims:
        text = config_text(
            sims,
            {"default": "cerebras,llama-3.3-70b"},
            security="[security.ssrf_protection]\nallow_localhost = true\n"
            "[security.limits]\nkeepalive_per_peer = 2",
        )
        proxy = await apps.start(parse_config(text, {}))
        host, port = proxy.server.host, proxy.server.port
        connections = [await asyncio.open_connection(host, port) for _ in range(4)]
        verdicts, lengths = [], []
        for reader, writer in connections:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            verdicts.append(b"connection: close" in head.lower())
            lengths.append(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
        closed = []
        for reader, _ in connections[2:]:
            async with asyncio.timeout(2):
                await reader.read()  # returns once the daemon has closed the connection
            closed.append(reader.at_eof())
        again = []
        for (reader, writer), length in zip(connections[:2], lengths, strict=False):
            await reader.readexactly(length)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            again.append((await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200"))
        for _, writer in connections:
            writer.close()
    assert verdicts == [False, False, True, True]
    assert closed == [True, True]
    assert again == [True, True]  # the first two stayed open for the next request


async def test_an_unresolvable_host_is_named_in_no_detail(apps: Apps) -> None:
    dns = FakeDNS({})  # every name fails like NXDOMAIN
    text = (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "p,m"\n'
        '[[providers]]\nname = "p"\napi_base_url = "https://internal-llm.corp.example/v1"\n'
        'api_key = "k"\nmodels = ["m"]\n'
    )
    proxy = await apps.start(parse_config(text, {}), dns=dns)
    answer = await post(proxy.url + "/v1/chat/completions", {**CHAT, "model": "p,m"})
    assert answer.status == 502
    detail = openai_error(answer)["attempts"][-1]["detail"]
    assert detail.startswith("cannot connect to the provider")
    assert "internal-llm" not in answer.body.decode()


async def test_a_cookie_set_by_a_provider_is_never_sent_back(apps: Apps) -> None:
    """The daemon's session is shared by every client: a cookie kept from one answer would go
    out with every later request, whoever sent it."""
    cookies: list[str | None] = []

    async def chat(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("cookie"))
        answer = web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hi"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
        answer.set_cookie("session", "from-the-provider", domain="llm.internal.test", path="/")
        return answer

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", chat)
    async with TestServer(upstream, host="127.0.0.1") as server:
        text = (
            f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "p,m"\n'
            '[[providers]]\nname = "p"\n'
            f'api_base_url = "http://llm.internal.test:{server.port}/v1"\n'
            'api_key = "k"\nmodels = ["m"]\nallow_private_network = true\n'
        )
        dns = FakeDNS({"llm.internal.test": ["127.0.0.1"]})
        proxy = await apps.start(parse_config(text, {}), dns=dns)
        answers = [await post(proxy.url + "/v1/chat/completions", CHAT) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert cookies == [None, None, None]
