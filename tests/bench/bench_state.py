"""Benchmark: what `[state] backend = "redis"` costs on the request path, and how exactly a
limit holds across three daemons.

Not a test (nothing here is timed inside pytest). Needs `redis-server` (Debian's package). Run:

    .venv/bin/python tests/bench/bench_state.py [--requests 2000] [--limit 600]

1. The daemon with a rate limit configured (so the one synchronous Redis round trip, the
   limit decision, is on the path), memory backend versus Redis backend, each in its own
   process in front of the same simulated provider: p50 and p99 per request, and the difference.
2. Three daemons on one Redis with a global limit of `--limit` a minute: twice that many
   requests round-robin, as fast as they come; how many were admitted against the limit (the
   bucket refills `limit/60` a second, so the allowance is the limit plus what refilled).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
from bench_common import REPO, free_port, one, pct, run_simulator, sequential, wait_for

LIMITS = (
    "[security.rate_limiting]\nrequests_per_minute = 0\nconcurrent_requests = 0\n"
    "[security.rate_limiting.global]\nrequests_per_minute = {rpm}\n"
)


def _config(directory: Path, name: str, sim_base: str, rpm: int, redis_url: str | None) -> Path:
    text = (
        '[proxy]\napi_key = "bench-key"\n[router]\ndefault = "sim,bench-model"\n'
        f'[[providers]]\nname = "sim"\napi_base_url = "{sim_base}"\napi_key = "k"\n'
        'models = ["bench-model"]\nallow_private_network = true\n'
        "[security.ssrf_protection]\nallow_localhost = true\n" + LIMITS.format(rpm=rpm)
    )
    if redis_url:
        text += f'[state]\nbackend = "redis"\nurl = "{redis_url}"\n'
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def _daemon(stack: ExitStack, config: Path) -> str:
    port = free_port()
    process = subprocess.Popen(
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
        stderr=subprocess.DEVNULL,
    )
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    wait_for(port)
    return f"http://127.0.0.1:{port}/v1/chat/completions"


async def _burst(urls: list[str], total: int) -> tuple[int, float]:
    async def one(session: aiohttp.ClientSession, url: str) -> int:
        async with session.post(
            url,
            json={"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer bench-key"},
        ) as response:
            await response.read()
            return response.status

    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(session, urls[i % len(urls)]) for i in range(total)))
        return statuses.count(200), time.perf_counter() - started


async def _warm(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await one(session, url, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=600)
    args = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is not installed")

    receive, send = multiprocessing.Pipe(duplex=False)
    simulator = multiprocessing.get_context("spawn").Process(
        target=run_simulator, args=(send,), daemon=True
    )
    simulator.start()
    sim_base = receive.recv()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        directory = Path(tmp)
        redis_port = free_port()
        redis = subprocess.Popen(
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(redis.wait, 10)
        stack.callback(redis.terminate)
        wait_for(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        big = 10_000_000  # limits configured, never reached: the cost of deciding
        memory = _daemon(stack, _config(directory, "memory", sim_base, big, None))
        shared = _daemon(stack, _config(directory, "redis", sim_base, big, redis_url))

        print(
            f"{args.requests} sequential non-streaming requests each (5 interleaved rounds), "
            "rate limit configured"
        )
        results: dict[str, list[float]] = {"memory": [], "redis": []}
        for _ in range(5):  # interleaved, so the machine's drift hits both alike
            for name, url in (("memory", memory), ("redis", shared)):
                results[name] += asyncio.run(sequential(url, args.requests // 5, False))
        for name, values in results.items():
            print(f"  {name:7s} p50 {pct(values, 50):7.3f} ms   p99 {pct(values, 99):7.3f} ms")
        print(
            f"  redis adds p50 {pct(results['redis'], 50) - pct(results['memory'], 50):.3f}"
            f" ms, p99 {pct(results['redis'], 99) - pct(results['memory'], 99):.3f} ms"
        )

        three = [
            _daemon(stack, _config(directory, f"limit{i}", sim_base, args.limit, redis_url))
            for i in range(3)
        ]
        for url in three:
            asyncio.run(_warm(url))  # one request each, counted below
        admitted, elapsed = asyncio.run(_burst(three, 2 * args.limit))
        admitted += 3
        allowance = args.limit + args.limit / 60 * elapsed
        print(
            f"three daemons, global limit {args.limit}/min: {admitted} of "
            f"{2 * args.limit + 3} admitted in {elapsed:.2f} s; allowance {allowance:.1f} "
            f"(limit + refill); off by {100 * (admitted - allowance) / args.limit:+.2f}% "
            "of the limit"
        )
    simulator.terminate()


if __name__ == "__main__":
    main()
