"""Three daemons on one real Redis share rate limits, breakers, cooldowns, the half-open probe,
health figures and management changes, and keep serving when Redis goes away.

Each daemon is the real app on its own socket with its own Redis client and pool, as three
processes or hosts would be (the app holds no module-level state).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from redis_support import RedisServer, free_port, needs_redis
from support import ALLOW_LOCALHOST, CLIENT_KEY, Daemon, config_text

from proxy.config import load_config
from proxy.server import build_app
from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated
from proxy.simulate.faults import openai_rate_limit

pytestmark = needs_redis

MANAGEMENT_KEY = "management-secret-for-tests"
BODY = {"model": "auto", "messages": [{"role": "user", "content": "Hello there"}]}
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
NAMES = ("a", "b", "c")


@pytest.fixture
def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


class Fleet:
    """Daemons started from their own config files; closed at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.daemons: list[Daemon] = []

    async def start(self, texts: dict[str, str]) -> list[Daemon]:
        for name, text in texts.items():
            path = self.directory / f"{name}.toml"
            path.write_text(text, encoding="utf-8")
            config = load_config(path, env={})
            server = TestServer(build_app(config, env={}), host="127.0.0.1")
            await server.start_server()
            self.daemons.append(Daemon(server, config))
        return self.daemons

    async def close(self) -> None:
        for daemon in self.daemons:
            await daemon.server.close()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    started = Fleet(tmp_path)
    yield started
    await started.close()


def shared_config(
    sims: dict[str, SimulatedProvider],
    redis_url: str,
    name: str,
    *,
    route: str = "bad,m|good,m",
    extra: str = "",
    proxy: str = "",
) -> str:
    """A daemon in front of `sims` on the shared Redis; `bad` tells which daemon sent a request."""
    state = f'[state]\nbackend = "redis"\nurl = "{redis_url}"\n'
    management = f'[management]\nenabled = true\nsecret_key = "{MANAGEMENT_KEY}"\n'
    return (
        config_text(
            sims,
            {"default": route},
            proxy=proxy,
            security=ALLOW_LOCALHOST,
            provider_extra={"bad": f'headers = {{ "x-daemon" = "{name}" }}'},
        )
        + state
        + management
        + extra
    )


def sims() -> list[SimulatedProvider]:
    return [SimulatedProvider("bad", "openai", ["m"]), SimulatedProvider("good", "openai", ["m"])]


async def post(
    session: aiohttp.ClientSession, daemon: Daemon, model: str = "auto"
) -> tuple[int, Any]:
    async with session.post(
        daemon.url + "/v1/chat/completions", json={**BODY, "model": model}, headers=AUTH
    ) as response:
        return response.status, await response.json()


async def health(session: aiohttp.ClientSession, daemon: Daemon) -> Any:
    async with session.get(daemon.url + "/health", headers=AUTH) as response:
        return await response.json()


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until `check` holds (polled every 20 ms); fails after `within`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def target_state(body: Any, target: str) -> dict[str, Any]:
    return next((t for t in body["targets"] if t["target"] == target), {})


async def test_a_global_limit_of_60_a_minute_admits_60_of_120_across_three_daemons(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    limits = (
        "[security.rate_limiting]\nrequests_per_minute = 0\nconcurrent_requests = 0\n"
        "[security.rate_limiting.global]\nrequests_per_minute = 60\n"
    )
    async with run_simulated(sims()) as running:
        daemons = await fleet.start(
            {
                n: shared_config(running, redis_server.url, n, route="good,m", extra=limits)
                for n in NAMES
            }
        )
        # 12 in flight at a time: a burst, without making each daemon open 40 Redis connections
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=12)) as session:
            started = time.monotonic()
            results = await asyncio.gather(*(post(session, daemons[i % 3]) for i in range(120)))
            elapsed = time.monotonic() - started
    statuses = [status for status, _ in results]
    admitted = statuses.count(200)
    assert statuses.count(200) + statuses.count(429) == 120
    # The bucket refills one request a second: exactly 60 when the burst takes under a second.
    assert 60 <= admitted <= 60 + int(elapsed), (admitted, elapsed)
    if elapsed < 1.0:
        assert admitted == 60
    per_daemon = [statuses[i::3].count(200) for i in range(3)]
    assert all(count > 0 for count in per_daemon), per_daemon  # all three drew on one bucket
    refused = next(body for status, body in results if status == 429)
    assert refused["error"]["code"] == "rate_limit_exceeded"
    assert "global requests per minute" in refused["error"]["message"]
    assert len(running["good"].requests) == admitted


async def test_a_per_client_limit_holds_across_daemons(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    other = "sk-other-client-key-1234"
    limits = "[security.rate_limiting]\nrequests_per_minute = 30\nconcurrent_requests = 5\n"
    async with run_simulated(sims()) as running:
        texts = {
            n: shared_config(running, redis_server.url, n, route="good,m", extra=limits).replace(
                f'api_key = "{CLIENT_KEY}"', f'api_keys = ["{CLIENT_KEY}", "{other}"]'
            )
            for n in NAMES
        }
        daemons = await fleet.start(texts)
        async with aiohttp.ClientSession() as session:

            async def send(i: int, key: str) -> int:
                async with session.post(
                    daemons[i % 3].url + "/v1/chat/completions",
                    json=BODY,
                    headers={"authorization": f"Bearer {key}"},
                ) as response:
                    await response.read()
                    return response.status

            mine = [await send(i, CLIENT_KEY) for i in range(33)]
            theirs = [await send(i, other) for i in range(3)]
    # Sequential, so at most a few seconds: a refill of one request per 2 s.
    assert 30 <= mine.count(200) <= 32 and mine[-1] == 429, mine
    assert theirs == [200, 200, 200]  # another key has its own bucket


async def test_a_cooldown_seen_on_one_daemon_is_skipped_by_the_others_within_a_second(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    bad, good = sims()
    bad.plan = FaultPlan.always(openai_rate_limit(retry_after=60))
    async with run_simulated([bad, good]) as running:
        a, b, c = await fleet.start({n: shared_config(running, redis_server.url, n) for n in NAMES})
        async with aiohttp.ClientSession() as session:
            assert (await post(session, a))[0] == 200  # bad 429s, good answers
            assert len(running["bad"].requests) == 1

            async def cooling_everywhere() -> bool:
                for daemon in (b, c):
                    state = target_state(await health(session, daemon), "bad,m")
                    if state.get("cooldown_left", 0) < 50:
                        return False
                return True

            seen_after = await eventually(cooling_everywhere, within=1.0)
            for daemon in (b, c, b, c):
                assert (await post(session, daemon))[0] == 200
    assert len(running["bad"].requests) == 1  # b and c never sent it another request
    assert seen_after < 1.0


async def test_exactly_one_daemon_probes_a_half_open_target(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    bad, good = sims()
    bad.plan = FaultPlan.always(Status(500))
    health_settings = "[proxy.health]\nfailure_threshold = 1\nopen_ms = 1500\n"
    async with run_simulated([bad, good]) as running:
        daemons = await fleet.start(
            {n: shared_config(running, redis_server.url, n, proxy=health_settings) for n in NAMES}
        )
        async with aiohttp.ClientSession() as session:
            assert (await post(session, daemons[0]))[0] == 200  # opens bad's breaker

            async def open_everywhere() -> bool:
                states = [target_state(await health(session, d), "bad,m") for d in daemons]
                return all(s.get("state") == "open" for s in states)

            await eventually(open_everywhere, within=1.0)
            sent_before = len(running["bad"].requests)

            async def half_open_everywhere() -> bool:
                states = [target_state(await health(session, d), "bad,m") for d in daemons]
                return all(s.get("state") == "half-open" for s in states)

            await eventually(half_open_everywhere, within=3.0)
            for _ in range(4):  # bursts on every daemon while the target is half-open
                results = await asyncio.gather(*(post(session, d) for d in daemons * 3))
                assert all(status == 200 for status, _ in results)
                await asyncio.sleep(0.05)
    probes = running["bad"].requests[sent_before:]
    assert probes, "nobody probed the half-open target"
    assert {r.headers["x-daemon"] for r in probes} == {probes[0].headers["x-daemon"]}


async def test_speed_measured_on_one_daemon_ranks_fastest_on_another(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    slow, quick = (
        SimulatedProvider("bad", "openai", ["m"], first_token_delay=0.2),
        SimulatedProvider("good", "openai", ["m"]),
    )
    mapping = (
        '[[router.model_mappings]]\nfrom = "fastest"\nto = "@fastest"\n'
        'candidates = "bad,m|good,m"\n'
    )
    async with run_simulated([slow, quick]) as running:
        texts = {
            n: shared_config(running, redis_server.url, n).replace(
                "[[providers]]", mapping + "[[providers]]", 1
            )
            for n in NAMES
        }
        a, b, _ = await fleet.start(texts)
        async with aiohttp.ClientSession() as session:
            for model in ("bad,m", "good,m", "bad,m", "good,m"):
                async with session.post(
                    a.url + "/v1/chat/completions", headers=AUTH, json={**BODY, "model": model}
                ) as response:
                    assert response.status == 200

            async def b_knows_both() -> bool:
                body = await health(session, b)
                return all(target_state(body, t).get("latency_ms") for t in ("bad,m", "good,m"))

            await eventually(b_knows_both, within=2.0)
            assert target_state(await health(session, b), "good,m")["requests"] == 2
            async with session.post(
                b.url + "/v1/chat/completions", headers=AUTH, json={**BODY, "model": "fastest"}
            ) as response:
                assert response.status == 200
                # b never served either: alone, it would try them in order ("bad" first)
                assert response.headers["x-llmproxy-provider"] == "good"


async def test_a_management_change_on_one_daemon_applies_on_all(
    redis_server: RedisServer, fleet: Fleet, tmp_path: Path
) -> None:
    async with run_simulated(sims()) as running:
        a, b, c = await fleet.start({n: shared_config(running, redis_server.url, n) for n in NAMES})
        headers = {"x-management-key": MANAGEMENT_KEY}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.put(
                a.url + "/v0/management/router", json={"default": "good,m"}
            ) as response:
                assert response.status == 200, await response.text()

            async def everywhere() -> bool:
                for daemon in (b, c):
                    async with session.get(daemon.url + "/v0/management/config") as response:
                        body = await response.json()
                    if body["config"]["router"]["default"] != "good,m":
                        return False
                return True

            await eventually(everywhere, within=1.0)
            async with session.put(
                b.url + "/v0/management/router", json={"default": "nobody,m"}
            ) as response:
                assert response.status == 400  # refused where it was made; nothing published
            await asyncio.sleep(0.3)
            for daemon in (a, c):
                async with session.get(daemon.url + "/v0/management/config") as response:
                    assert (await response.json())["config"]["router"]["default"] == "good,m"
    for name in NAMES:  # each daemon wrote the change into its own file
        assert 'default = "good,m"' in (tmp_path / f"{name}.toml").read_text()
        assert f'"x-daemon" = "{name}"' in (tmp_path / f"{name}.toml").read_text()


async def test_killing_redis_under_load_fails_no_request_and_state_comes_back(
    redis_server: RedisServer, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "llmproxy.state")
    bad, good = sims()
    limits = "[security.rate_limiting]\nrequests_per_minute = 100000\nconcurrent_requests = 1000\n"
    async with run_simulated([bad, good]) as running:
        daemons = await fleet.start(
            {n: shared_config(running, redis_server.url, n, extra=limits) for n in NAMES}
        )
        a, b, _ = daemons
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load(session: aiohttp.ClientSession, offset: int) -> None:
            i = offset
            while not stop.is_set():
                # `good` only: the cooldown below is `a`'s to learn, not the load's
                statuses.append((await post(session, daemons[i % 3], "good,m"))[0])
                i += 1

        async def redis_everywhere(session: aiohttp.ClientSession) -> set[str]:
            return {(await health(session, d))["state"]["redis"] for d in daemons}

        async with aiohttp.ClientSession() as session:
            loaders = [asyncio.create_task(load(session, i)) for i in range(4)]
            try:
                await asyncio.sleep(0.5)
                redis_server.kill()

                async def reported_down() -> bool:
                    return await redis_everywhere(session) == {"down"}

                assert await eventually(reported_down, within=1.5) < 1.5
                async with session.get(a.url + "/health/ready", headers=AUTH) as response:
                    assert response.status == 200  # still ready: local state serves
                    assert (await response.json())["state"] == {"backend": "redis", "redis": "down"}
                async with session.get(a.url + "/metrics", headers=AUTH) as response:
                    assert "llmproxy_shared_state_up 0.0" in await response.text()
                await asyncio.sleep(0.5)  # requests keep flowing on local state
                bad.plan = FaultPlan.always(openai_rate_limit(retry_after=60))
                assert (await post(session, a))[0] == 200  # a learns of a cooldown alone
                assert target_state(await health(session, b), "bad,m").get("cooldown_left", 0) == 0

                await asyncio.to_thread(redis_server.start)

                async def resynced() -> bool:
                    state = target_state(await health(session, b), "bad,m")
                    up = await redis_everywhere(session) == {"up"}
                    return up and state.get("cooldown_left", 0) > 50

                await eventually(resynced, within=3.0)
                async with session.get(a.url + "/metrics", headers=AUTH) as response:
                    assert "llmproxy_shared_state_up 1.0" in await response.text()
                await asyncio.sleep(0.3)
            finally:
                stop.set()
                await asyncio.gather(*loaders)
        client = Redis.from_url(redis_server.url)
        try:
            limit_keys = await client.keys("llmproxy:rl:*")
        finally:
            await client.aclose()
    assert len(statuses) > 30
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    outage = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(outage) == 3  # once per daemon
    assert len([r for r in caplog.records if "Redis answers" in r.getMessage()]) == 6
    assert limit_keys  # the limits are decided in Redis again


async def test_rate_limits_fail_closed_when_configured(fleet: Fleet) -> None:
    nothing = f"redis://127.0.0.1:{free_port()}/0"
    limits = "[security.rate_limiting]\nrequests_per_minute = 100\n"
    async with run_simulated(sims()) as running:
        text = shared_config(running, nothing, "a", route="good,m", extra=limits)
        text = text.replace("[state]\n", '[state]\nrate_limits_when_down = "closed"\n')
        (daemon,) = await fleet.start({"a": text})
        async with aiohttp.ClientSession() as session:
            status, body = await post(session, daemon)
            state = (await health(session, daemon))["state"]
    assert status == 503
    assert body["error"]["code"] == "rate_limits_unavailable"
    assert (state["backend"], state["redis"]) == ("redis", "down")


async def test_a_hung_redis_costs_requests_at_most_one_timeout_then_local_limits_apply(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    limits = "[security.rate_limiting]\nrequests_per_minute = 3\nconcurrent_requests = 0\n"
    async with run_simulated(sims()) as running:
        (daemon,) = await fleet.start(
            {"a": shared_config(running, redis_server.url, "a", route="good,m", extra=limits)}
        )
        async with aiohttp.ClientSession() as session:
            assert (await post(session, daemon))[0] == 200  # one of 3, counted in Redis
            redis_server.pause()
            try:
                started = time.monotonic()
                first = (await post(session, daemon))[0]
                waited = time.monotonic() - started
                state = (await health(session, daemon))["state"]
                # Now local buckets decide, with the whole allowance of this instance.
                rest = [(await post(session, daemon))[0] for _ in range(3)]
            finally:
                redis_server.resume()

            async def back() -> bool:
                return (await health(session, daemon))["state"]["redis"] == "up"

            await eventually(back, within=3.0)
            again = [(await post(session, daemon))[0] for _ in range(3)]
    assert first == 200 and waited < 1.0
    assert state["redis"] == "down"
    assert rest == [200, 200, 429]
    # Redis decides again: the local bucket is empty, Redis's has a request or two left (the
    # command that timed out may still have run when Redis woke up).
    assert again[0] == 200 and again[-1] == 429


async def test_a_conversation_keeps_its_warm_target_on_another_daemon(
    redis_server: RedisServer, fleet: Fleet
) -> None:
    bad, good = sims()
    bad.plan.push(Status(500), Status(500))  # turn one fails over to good (and its retry)
    system = {"role": "system", "content": "You are a careful assistant. " * 20}
    turn1 = {"model": "auto", "messages": [system, {"role": "user", "content": "Turn one"}]}
    async with run_simulated([bad, good]) as running:
        a, b = await fleet.start(
            {n: shared_config(running, redis_server.url, n) for n in NAMES[:2]}
        )
        async with aiohttp.ClientSession() as session:
            async with session.post(
                a.url + "/v1/chat/completions", json=turn1, headers=AUTH
            ) as response:
                assert response.headers["x-llmproxy-provider"] == "good"
                answer = (await response.json())["choices"][0]["message"]["content"]
            await asyncio.sleep(0.5)  # the entry is announced in the background
            turn2 = {
                **turn1,
                "messages": [
                    *turn1["messages"],
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": "Turn two"},
                ],
            }
            async with session.post(
                b.url + "/v1/chat/completions", json=turn2, headers=AUTH
            ) as response:
                assert response.status == 200
                # b never saw turn one: alone, it would route to bad, healthy there
                assert response.headers["x-llmproxy-provider"] == "good"
                assert response.headers["x-llmproxy-affinity"].startswith("kept good,m")
    assert len(running["bad"].requests) == 2
