"""What the benchmark scripts share: free ports, waiting for a listener, a simulated provider in
its own process, and timing one small chat request (the scripts beside `bench_proxy.py`)."""

from __future__ import annotations

import asyncio
import multiprocessing.connection
import socket
import statistics
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Benchmark me, please."}]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int) -> None:
    for _ in range(400):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def run_simulator(port_out: multiprocessing.connection.Connection) -> None:
    """A simulated OpenAI-format provider serving `bench-model`; sends its base URL back."""
    from proxy.simulate import SimulatedProvider, run_simulated

    async def main() -> None:
        sim = SimulatedProvider("sim", "openai", ["bench-model"], chunk_chars=8)
        async with run_simulated([sim]) as sims:
            port_out.send(sims["sim"].base_url)
            await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


async def one(session: aiohttp.ClientSession, url: str, stream: bool) -> float:
    """Milliseconds for one small chat request through the daemon at `url`."""
    started = time.perf_counter()
    async with session.post(
        url, json={**BODY, "stream": stream}, headers={"authorization": "Bearer bench-key"}
    ) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000


async def sequential(url: str, n: int, stream: bool) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # warm up connections and caches
            await one(session, url, stream)
        return [await one(session, url, stream) for _ in range(n)]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]
