"""SIGTERM drains in-flight requests before the daemon exits (a real `llmproxy serve` process)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import orjson
from support import CLIENT_KEY, config_text

from proxy.simulate import FaultPlan, SimulatedProvider, reply_text, run_simulated


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_up(url: str, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("daemon did not come up")
            await asyncio.sleep(0.1)


async def test_sigterm_lets_an_in_flight_stream_finish_then_exits(tmp_path: Path) -> None:
    slow = SimulatedProvider(
        "zai", "openai", ["glm-5"], plan=FaultPlan(), chunk_delay=0.08, chunk_chars=4
    )
    async with run_simulated([slow]) as sims:
        config = tmp_path / "config.toml"
        config.write_text(config_text(sims, {"default": "zai,glm-5"}))
        port = free_port()
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_up(url)
            body = {
                "model": "auto",
                "stream": True,
                "messages": [{"role": "user", "content": "drain me please"}],
            }
            text = ""
            done = False
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url + "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                ) as response,
            ):
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:].strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    chunk = orjson.loads(payload)
                    if chunk["choices"] and (piece := chunk["choices"][0]["delta"].get("content")):
                        if not text:
                            daemon.send_signal(signal.SIGTERM)  # mid-answer
                        text += piece
            code = await asyncio.wait_for(daemon.wait(), 10)
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()
    assert done
    assert text == reply_text("zai", "glm-5", "drain me please")
    assert code == 0
