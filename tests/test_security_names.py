"""Client-chosen names cannot grow the daemon: model names are bounded and plain, the health
registry is bounded, and the unauthenticated `GET /health` stays small."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest
from conftest import Clients
from raw_http import get, post
from security_support import Apps
from support import ALLOW_LOCALHOST, CLIENT_KEY, Daemon, config_text

from proxy.config import parse_config
from proxy.health import MAX_TRACKED, HealthRegistry
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import ErrorClass, Target

StartDaemon = Callable[[str], Awaitable[Daemon]]


def sims() -> list[SimulatedProvider]:
    return [SimulatedProvider("zai", "openai", ["glm-5"])]


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x7f"], ids=["CR", "LF", "NUL", "DEL"])
@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/messages/count_tokens"]
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_control_characters_in_a_model_name_are_a_400_before_any_upstream_call(
    apps: Apps, char: str, path: str, stream: bool
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(config_text(running, {"default": "zai,glm-5"}), {}))
        model = f"zai,glm-5{char}x-injected: 1"
        body: dict[str, object] = {"model": model, "max_tokens": 5, "stream": stream}
        if path == "/v1/responses":
            body["input"] = "hi"
        else:
            body["messages"] = [{"role": "user", "content": "hi"}]
        response = await post(proxy.url + path, body)
        reached = running["zai"].requests
    assert response.status == 400
    assert response.content_type == "application/json"
    assert f"U+{ord(char):04X}" in response.body.decode()
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert reached == ()


async def test_sdk_gets_a_bad_request_for_a_huge_model_name(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(config_text(running, {"default": "zai,glm-5"}))
        with pytest.raises(openai.BadRequestError) as refused:
            await clients.openai(proxy).chat.completions.create(
                model="zai," + "m" * (10 * 1024 * 1024),
                messages=[{"role": "user", "content": "hi"}],
            )
        reached = running["zai"].requests
    assert "at most 256" in refused.value.message
    assert reached == ()


async def test_health_is_small_without_a_key_and_detailed_with_one(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(config_text(running, {"default": "zai,glm-5"}), {}))
        assert (
            await post(
                proxy.url + "/v1/chat/completions",
                {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            )
        ).status == 200
        anonymous = await get(proxy.url + "/health", key="")
        wrong = await get(proxy.url + "/health", key="sk-wrong")
        holder = await get(proxy.url + "/health", key=CLIENT_KEY)
    assert anonymous.status == wrong.status == 200
    for public in (anonymous.json(), wrong.json()):
        # what `llmproxy stop`/`reload`/`status` on this machine need
        assert set(public) == {"status", "pid", "config", "state"}
        assert public["status"] == "ok"
    assert len(anonymous.body) < 300
    detailed = holder.json()
    assert detailed["providers"] == ["zai"]
    assert [t["target"] for t in detailed["targets"]] == ["zai,glm-5"]


def test_the_health_registry_is_bounded_and_keeps_failing_targets() -> None:
    now = [0.0]
    registry = HealthRegistry(clock=lambda: now[0])
    failing = Target("zai", "glm-5")
    registry.record_failure(failing, ErrorClass.QUOTA_EXHAUSTED)
    for n in range(MAX_TRACKED * 3):
        registry.record_success(Target("open", f"model-{n}"), 1.0)
    snapshot = registry.snapshot()
    assert len(snapshot) == MAX_TRACKED
    assert failing in {s.target for s in snapshot}  # a flood cannot un-cool a target
    assert registry.skip_reason(failing) is not None


async def test_a_flood_of_model_names_through_the_daemon_keeps_health_bounded(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        text = config_text(
            running,
            {"default": "zai,glm-5"},
            security=ALLOW_LOCALHOST + "\n[security.rate_limiting]\n"
            "requests_per_minute = 100000\nconcurrent_requests = 64",
            provider_extra={"zai": 'models = ["*"]'},
        )
        proxy = await apps.start(parse_config(text.replace('models = ["glm-5"]\n', ""), {}))
        limit = asyncio.Semaphore(16)
        names = [f"zai,flood-{n}" for n in range(MAX_TRACKED + 200)]

        async def ask(session: aiohttp.ClientSession, model: str) -> int:
            async with (
                limit,
                session.post(
                    proxy.url + "/v1/chat/completions",
                    headers={"x-api-key": CLIENT_KEY},
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                ) as response,
            ):
                await response.read()
                return response.status

        async with aiohttp.ClientSession() as session:
            statuses = await asyncio.gather(*(ask(session, name) for name in names))
        anonymous = await get(proxy.url + "/health", key="")
        holder = await get(proxy.url + "/health", key=CLIENT_KEY)
    assert set(statuses) == {200}, set(statuses)
    assert len(anonymous.body) < 300
    targets = holder.json()["targets"]
    assert len(targets) == MAX_TRACKED  # every name was tried; the registry kept the bound
    assert len(holder.body) < MAX_TRACKED * 600
