"""Benchmark: the daemon in front of a simulated provider versus the provider called directly.

Not a test (nothing here is timed inside pytest). Run:

    .venv/bin/python tests/bench/bench_proxy.py [--requests 2000] [--concurrency 32]

The simulated provider and the daemon each run in their own process, so the numbers are the
daemon's own: added latency (p50, p99) per request, requests per second through the proxy, and
the daemon's CPU time per request (from /proc, user + system), for non-streaming and streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Benchmark me, please."}]}


def _run_simulator(port_out: multiprocessing.connection.Connection) -> None:
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one(session: aiohttp.ClientSession, url: str, stream: bool) -> float:
    started = time.perf_counter()
    async with session.post(
        url, json={**BODY, "stream": stream}, headers={"authorization": "Bearer bench-key"}
    ) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000


async def _sequential(url: str, n: int, stream: bool) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # warm up connections and caches
            await _one(session, url, stream)
        return [await _one(session, url, stream) for _ in range(n)]


async def _throughput(url: str, seconds: float, concurrency: int, stream: bool) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await _one(session, url, stream)
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def _measure(
    direct: str, proxied: str, pid: int, n: int, concurrency: int, stream: bool
) -> None:
    base = await _sequential(direct, n, stream)
    cpu_before = _cpu_seconds(pid)
    through = await _sequential(proxied, n, stream)
    cpu_ms = (_cpu_seconds(pid) - cpu_before) * 1000 / (n + 0)
    rps = await _throughput(proxied, 5.0, concurrency, stream)
    kind = "streaming" if stream else "non-streaming"
    print(f"{kind}:")
    print(f"  direct     p50 {_pct(base, 50):7.3f} ms   p99 {_pct(base, 99):7.3f} ms")
    print(f"  via proxy  p50 {_pct(through, 50):7.3f} ms   p99 {_pct(through, 99):7.3f} ms")
    print(
        f"  added      p50 {_pct(through, 50) - _pct(base, 50):7.3f} ms   "
        f"p99 {_pct(through, 99) - _pct(base, 99):7.3f} ms"
    )
    print(f"  proxy CPU  {cpu_ms:.3f} ms/request (sequential run, warm-up excluded)")
    print(f"  throughput {rps:,.0f} requests/s through the proxy ({concurrency} concurrent)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--log-level", default="warning",
                        help="the daemon's; at info it writes one line per request (to "
                        "/dev/null here), as a daemon does by default")
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    simulator = multiprocessing.get_context("spawn").Process(
        target=_run_simulator, args=(send,), daemon=True
    )
    simulator.start()
    sim_base = receive.recv()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            '[proxy]\napi_key = "bench-key"\n[router]\ndefault = "sim,bench-model"\n'
            f'[[providers]]\nname = "sim"\napi_base_url = "{sim_base}"\napi_key = "k"\n'
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
                args.log_level,
            ],
            cwd=REPO,
            # the request journal goes to the temp dir, as a daemon's goes to its state dir
            env={**os.environ, "LLMPROXY_STATE_DIR": tmp},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                        break
                except OSError:
                    time.sleep(0.05)
            print(f"{args.requests} sequential requests each way; CPU from /proc/{daemon.pid}")
            for stream in (False, True):
                asyncio.run(
                    _measure(
                        sim_base + "/chat/completions",
                        url + "/v1/chat/completions",
                        daemon.pid,
                        args.requests,
                        args.concurrency,
                        stream,
                    )
                )
        finally:
            daemon.terminate()
            daemon.wait(10)
            simulator.terminate()


if __name__ == "__main__":
    main()
