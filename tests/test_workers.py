"""`llmproxy serve --workers N`: a real supervisor process and its workers on one port."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from redis_support import RedisServer, free_port, needs_redis
from support import CLIENT_KEY, config_text
from typer.testing import CliRunner

from cli.main import app
from proxy.simulate import SimulatedProvider, reply_text, run_simulated

PROMPT = "drain me please, every worker"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


async def start(
    config: Path, port: int, state: Path, workers: int = 2
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LLMPROXY_STATE_DIR": str(state)},
    )


async def worker_pids(url: str, connections: int = 40) -> set[int]:
    """Which workers answer: each request on a new connection, which the kernel spreads."""
    seen: set[int] = set()
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(connections):
                try:
                    async with session.get(url + "/health") as response:
                        seen.add((await response.json())["worker"]["pid"])
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        if len(seen) >= 2:
            return seen
    return seen


async def stream(url: str, started: asyncio.Event) -> str:
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    text = ""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        ) as response,
    ):
        assert response.status == 200
        async for line in response.content:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if chunk["choices"] and (piece := chunk["choices"][0]["delta"].get("content")):
                text += piece
                started.set()
    return text


@needs_redis
async def test_two_workers_share_one_port_show_in_status_and_drain_on_sigterm(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    slow = SimulatedProvider("zai", "openai", ["glm-5"], chunk_delay=0.05, chunk_chars=4)
    async with run_simulated([slow]) as sims:
        config = tmp_path / "config.toml"
        config.write_text(
            config_text(sims, {"default": "zai,glm-5"})
            + f'[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n'
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        supervisor = await start(config, port, tmp_path / "state")
        try:
            pids = await worker_pids(url)
            assert len(pids) == 2, pids

            status = await asyncio.to_thread(
                CliRunner().invoke,
                app,
                ["status", "--json", "--url", url],
                env={"LLMPROXY_STATE_DIR": str(tmp_path / "state"), "LLMPROXY_API_KEY": CLIENT_KEY},
            )
            report = orjson.loads(status.stdout)
            assert report["supervisor"] == supervisor.pid
            assert {w["pid"] for w in report["workers"]} == pids
            assert all(w["alive"] for w in report["workers"])
            assert report["state"]["redis"] == "up"

            flags = [asyncio.Event() for _ in range(8)]
            streams = [asyncio.create_task(stream(url, flag)) for flag in flags]
            await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), 20)
            supervisor.send_signal(signal.SIGTERM)  # every stream is mid-answer
            texts = await asyncio.wait_for(asyncio.gather(*streams), 30)
            code = await asyncio.wait_for(supervisor.wait(), 30)
        finally:
            if supervisor.returncode is None:
                supervisor.kill()
                await supervisor.wait()
    assert texts == [reply_text("zai", "glm-5", PROMPT)] * 8
    assert code == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "state" / f"workers-{port}.json").exists()


async def test_workers_without_redis_warn_and_one_dying_stops_the_set(tmp_path: Path) -> None:
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        config = tmp_path / "config.toml"
        config.write_text(config_text(sims, {"default": "zai,glm-5"}))
        port = free_port()
        supervisor = await start(config, port, tmp_path / "state")
        try:
            first, second = await worker_pids(f"http://127.0.0.1:{port}")
            os.kill(first, signal.SIGKILL)
            code = await asyncio.wait_for(supervisor.wait(), 30)
        finally:
            if supervisor.returncode is None:
                supervisor.kill()
                await supervisor.wait()
        assert supervisor.stderr is not None
        errors = (await supervisor.stderr.read()).decode()
    assert code == 1  # so systemd's Restart= brings the whole set back
    assert "each worker keeps its own rate limits, cooldowns and health" in errors
    assert f"worker pid {first} exited" in errors
    assert "[/]" not in errors and "[yellow]" not in errors, errors  # markup is not printed
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)
