"""Benchmark: small requests' latency while large bodies are being handled.

Not a test. Run:

    .venv/bin/python tests/bench/bench_large_bodies.py [--seconds 10] [--mib 20] [--large 4]

The daemon and a simulated provider run in their own processes (as in `bench_proxy.py`). First
small non-streaming requests are timed alone (baseline); then again while `--large` clients
each send `--mib` MiB chat requests back to back. Parsing, validating, summarising and
estimating a large body happens off the event loop, so the small requests' p99 should stay in
the tens of milliseconds instead of the seconds a loop-blocking parse costs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from bench_common import REPO, free_port, one, run_simulator, wait_for


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _large_body(mib: int) -> bytes:
    line = "All work and no play makes a large request body. " * 20
    count = mib * 1024 * 1024 // (len(line) + 40)
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} {line}"}
        for i in range(count - count % 2 + 1)
    ]
    return orjson.dumps({"model": "bulk,bench-model", "max_tokens": 16, "messages": messages})


async def _small_latencies(url: str, seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            samples.append(await one(session, url, False))
            await asyncio.sleep(0.01)
    return samples


async def _large_client(url: str, body: bytes, stop: asyncio.Event, done: list[float]) -> None:
    headers = {"authorization": "Bearer bench-key", "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"large request: HTTP {response.status}")
            done.append(time.perf_counter() - started)


async def _measure(url: str, seconds: float, mib: int, large: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            await one(session, url, False)
    alone = await _small_latencies(url, seconds)
    body = _large_body(mib)
    stop = asyncio.Event()
    durations: list[float] = []
    clients = [asyncio.create_task(_large_client(url, body, stop, durations)) for _ in range(large)]
    await asyncio.sleep(1.0)  # every large client has a request in flight
    loaded = await _small_latencies(url, seconds)
    stop.set()
    await asyncio.gather(*clients)
    print(
        f"small requests alone:        n={len(alone):4d}  p50 {pct(alone, 50):8.1f} ms"
        f"  p99 {pct(alone, 99):8.1f} ms  max {max(alone):8.1f} ms"
    )
    print(
        f"with {large} x {len(body) / 2**20:.1f} MiB in flight: n={len(loaded):4d}"
        f"  p50 {pct(loaded, 50):8.1f} ms  p99 {pct(loaded, 99):8.1f} ms"
        f"  max {max(loaded):8.1f} ms"
    )
    if durations:
        print(
            f"large requests completed: {len(durations)}, "
            f"mean {sum(durations) / len(durations):.2f} s each"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--large", type=int, default=4)
    args = parser.parse_args()

    # Two simulator processes: the one answering the large requests parses them on its own
    # loop, which must not be what delays the small ones.
    simulators, bases = [], []
    for _ in range(2):
        receive, send = multiprocessing.Pipe(duplex=False)
        simulator = multiprocessing.get_context("spawn").Process(
            target=run_simulator, args=(send,), daemon=True
        )
        simulator.start()
        simulators.append(simulator)
        bases.append(receive.recv())
    sim_base, bulk_base = bases
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            '[proxy]\napi_key = "bench-key"\n[router]\ndefault = "sim,bench-model"\n'
            f'[[providers]]\nname = "sim"\napi_base_url = "{sim_base}"\napi_key = "k"\n'
            'models = ["bench-model"]\nallow_private_network = true\n'
            f'[[providers]]\nname = "bulk"\napi_base_url = "{bulk_base}"\napi_key = "k"\n'
            'models = ["bench-model"]\nallow_private_network = true\n'
            "[security.ssrf_protection]\nallow_localhost = true\n"
        )
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(port)
            asyncio.run(
                _measure(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    args.seconds,
                    args.mib,
                    args.large,
                )
            )
        finally:
            daemon.terminate()
            daemon.wait(10)
            for simulator in simulators:
                simulator.terminate()


if __name__ == "__main__":
    main()
