"""Benchmark: the daemon's cost per request beside the floor, measured in the same run.

Not a test (nothing here is timed inside pytest). Run:

    .venv/bin/python tests/bench/bench_proxy.py [--requests 1000] [--seconds 4] [--case NAME ...]

Three processes: this client, the daemon (`llmproxy serve`, uvloop, one worker) and a minimal
aiohttp upstream that reads and parses each request and answers with canned bytes in the
provider's wire format (one write per SSE event, as providers stream). A proxy must accept one
request and make one, so its floor is twice the upstream server's own CPU per request; both are
read from /proc (user + system) over the same requests, and the ratio is the daemon's CPU per
request over that floor.

For each case: added p50/p99 latency at concurrency 1 (through the daemon minus straight to the
upstream), added time to first token for streams, throughput and CPU per request at
concurrency 32, and the floor ratio at both concurrencies. Then the daemon's RSS after 10,000
requests and after 10,000 more, each read at once and once the daemon has been quiet for 3 s
(the target is on the second: what the daemon keeps between bursts). The targets of issue 16
are checked at the end; the exit status is 1 if one is missed. `--markdown` prints the README's
table.

`--against DIR` measures a second daemon run from another checkout (e.g. a `git worktree` of
the commit before a change) in the same run, interleaved case by case `--repeat` times, and
prints each case's CPU per request for both and the change: before/after figures that a noisy,
shared machine affects alike. `--baseline-observe TOML` and `--baseline-log-level LEVEL` configure
that daemon alone; with `--against .` they measure what observability costs, on the same code:

    .venv/bin/python tests/bench/bench_proxy.py --against . --repeat 5 --no-rss \\
        --baseline-log-level warning \\
        --baseline-observe $'[journal]\\nenabled = false\\n[metrics]\\nenabled = false'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from bench_common import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

CAPTURE = REPO / "tests/data/captures/claude-code-2.1.332_print-mode_no-experimental-betas.json"
CLIENT_KEY = "bench-key"
WORD = "word "  # one streamed chunk: about a token, as providers send them

# --- the minimal upstream ---------------------------------------------------------------------


def _chunks(model: str) -> int:
    """`bench-N` streams N content chunks."""
    tail = model.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 20


def _openai_reply(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": WORD * 20},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
        }
    ).encode()


def _openai_events(model: str) -> list[bytes]:
    def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": WORD}) for _ in range(_chunks(model))]
    events.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": _chunks(model), "total_tokens": 99}
    events.append(
        b"data: "
        + json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
        ).encode()
        + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    return events


def _anthropic_message(model: str) -> dict[str, object]:
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }


def _anthropic_reply(model: str) -> bytes:
    message = _anthropic_message(model)
    message["content"] = [{"type": "text", "text": WORD * 20}]
    message["stop_reason"] = "end_turn"
    message["usage"] = {"input_tokens": 12, "output_tokens": 20}
    return json.dumps(message).encode()


def _anthropic_events(model: str) -> list[bytes]:
    def event(name: str, data: dict[str, object]) -> bytes:
        return f"event: {name}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"

    events = [
        event("message_start", {"type": "message_start", "message": _anthropic_message(model)}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": WORD},
            },
        )
        for _ in range(_chunks(model))
    ]
    events += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": _chunks(model)},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
    return events


def _run_upstream(port_out: multiprocessing.connection.Connection) -> None:
    """The floor: read and parse the request, answer canned bytes. Nothing else."""
    import orjson
    from aiohttp import web

    replies: dict[tuple[str, str, bool], bytes | list[bytes]] = {}

    def reply(path: str, model: str, stream: bool) -> bytes | list[bytes]:
        key = (path, model, stream)
        if key not in replies:
            anthropic = path.endswith("/messages")
            if stream:
                replies[key] = (_anthropic_events if anthropic else _openai_events)(model)
            else:
                replies[key] = (_anthropic_reply if anthropic else _openai_reply)(model)
        return replies[key]

    async def handle(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        stream = bool(body.get("stream"))
        canned = reply(request.path, body["model"], stream)
        if isinstance(canned, bytes):
            return web.Response(body=canned, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in canned:
            await response.write(event)
        await response.write_eof()
        return response

    async def main() -> None:
        app = web.Application(client_max_size=1 << 24)
        app.router.add_post("/v1/chat/completions", handle)
        app.router.add_post("/v1/messages", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# --- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    client_path: str  # the daemon's endpoint
    provider_path: str  # the upstream's endpoint
    body: dict[str, object]  # as the client sends it; `model` names the daemon's target
    direct: dict[str, object]  # the same request in the provider's format, for the baseline
    stream: bool
    target: float = 1.5  # CPU ratio to the floor at concurrency 32

    def with_stream(self, stream: bool) -> dict[str, object]:
        return {**self.body, "stream": stream}


def _small(fmt: str, model: str) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Benchmark me, please."}],
    }
    if fmt == "anthropic":
        body["max_tokens"] = 1024
    return body


def _capture_body(model: str, stream: bool) -> tuple[dict[str, object], dict[str, object]]:
    """The captured Claude Code request (about 31 KB), and its OpenAI translation."""
    from proxy.translate.requests import anthropic_to_openai_request

    body = json.loads(CAPTURE.read_text())["body"]
    body = {**body, "model": f"oai,{model}", "stream": stream}
    direct = anthropic_to_openai_request(body, model)
    direct["stream"] = stream
    return body, direct


def _cases() -> list[Case]:
    oai, ant = "/v1/chat/completions", "/v1/messages"
    cases: list[Case] = []
    for stream, model in ((False, "bench"), (True, "bench-20"), (True, "bench-200")):
        kind = f"stream {_chunks(model)}" if stream else "non-stream"
        pairs = [
            ("openai>openai", oai, oai, "openai", "oai"),
            ("anthropic>openai", ant, oai, "anthropic", "oai"),
            ("anthropic>anthropic", ant, ant, "anthropic", "ant"),
        ]
        for label, client_path, provider_path, fmt, provider in pairs:
            provider_fmt = "anthropic" if provider == "ant" else "openai"
            cases.append(
                Case(
                    f"{label} {kind}",
                    client_path,
                    provider_path,
                    {**_small(fmt, f"{provider},{model}"), "stream": stream},
                    {**_small(provider_fmt, model), "stream": stream},
                    stream,
                )
            )
        if model != "bench-200":
            body, direct = _capture_body(model, stream)
            cases.append(
                Case(f"claude-code>openai {kind}", ant, oai, body, direct, stream, target=2.0)
            )
    return cases


# --- measuring --------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sleeps(pid: int) -> int:
    """Voluntary context switches of every thread of `pid`: how often it waited for work. A
    server woken once per request spends more CPU per request than one that finds several
    waiting (each wake-up is a return from `epoll_wait` and a trip through its event loop)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Timing:
    total_ms: float
    first_ms: float  # the first body bytes: time to first token, for a stream


async def _one(session: aiohttp.ClientSession, url: str, payload: bytes) -> Timing:
    started = time.perf_counter()
    async with session.post(
        url,
        data=payload,
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-api-key": CLIENT_KEY,
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
        },
    ) as response:
        first = await response.content.readany()
        first_ms = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {first[:300]!r}")
        while await response.content.readany():
            pass
    return Timing((time.perf_counter() - started) * 1000, first_ms)


async def _sequential(url: str, payload: bytes, n: int) -> list[Timing]:
    async with aiohttp.ClientSession() as session:
        for _ in range(min(50, n)):  # warm up connections and caches
            await _one(session, url, payload)
        return [await _one(session, url, payload) for _ in range(n)]


async def _concurrent(url: str, payload: bytes, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await _one(session, url, payload)
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


@dataclass
class Result:
    case: Case
    added_p50: float = 0.0
    added_p99: float = 0.0
    added_ttft: float = 0.0
    proxy_cpu_c1: float = 0.0  # ms per request
    ratio_c1: float = 0.0
    proxy_cpu: float = 0.0  # at concurrency 32
    floor: float = 0.0  # twice the upstream's CPU per request, concurrency 32
    upstream_wakeups: float = 0.0  # the upstream's voluntary context switches per request, c32
    ratio: float = 0.0
    rps: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def _measured(pids: tuple[int, int], run: Callable[[], int]) -> tuple[float, float, int, float]:
    """(daemon CPU ms, upstream CPU ms, requests, upstream wake-ups) per request over `run`."""
    proxy_pid, upstream_pid = pids
    proxy_before, upstream_before = _cpu_seconds(proxy_pid), _cpu_seconds(upstream_pid)
    sleeps_before = _sleeps(upstream_pid)
    n = run()
    proxy = (_cpu_seconds(proxy_pid) - proxy_before) * 1000 / n
    upstream = (_cpu_seconds(upstream_pid) - upstream_before) * 1000 / n
    return proxy, upstream, n, (_sleeps(upstream_pid) - sleeps_before) / n


def measure(
    case: Case, daemon: str, upstream: str, pids: tuple[int, int], args: argparse.Namespace
) -> Result:
    n: int = args.requests
    seconds: float = args.seconds
    concurrency: int = args.concurrency
    proxied = json.dumps(case.body).encode()
    direct = json.dumps(case.direct).encode()
    via, to = daemon + case.client_path, upstream + case.provider_path
    base = asyncio.run(_sequential(to, direct, n))
    through: list[Timing] = []

    def sequential() -> int:
        through.extend(asyncio.run(_sequential(via, proxied, n)))
        return len(through) + min(50, n)

    proxy_c1, upstream_c1, _, _ = _measured(pids, sequential)
    proxy_cpu, upstream_cpu, done, wakeups = _measured(
        pids, lambda: asyncio.run(_concurrent(via, proxied, seconds, concurrency))
    )
    result = Result(case)
    result.added_p50 = _pct([t.total_ms for t in through], 50) - _pct(
        [t.total_ms for t in base], 50
    )
    result.added_p99 = _pct([t.total_ms for t in through], 99) - _pct(
        [t.total_ms for t in base], 99
    )
    result.added_ttft = _pct([t.first_ms for t in through], 50) - _pct(
        [t.first_ms for t in base], 50
    )
    result.proxy_cpu_c1 = proxy_c1
    result.ratio_c1 = _ratio(proxy_c1, 2 * upstream_c1)
    result.proxy_cpu = proxy_cpu
    result.floor = 2 * upstream_cpu
    result.upstream_wakeups = wakeups
    result.ratio = _ratio(proxy_cpu, result.floor)
    result.rps = done / seconds
    return result


def _ratio(cpu: float, floor: float) -> float:
    """NaN when too few requests ran for /proc's 10 ms CPU ticks to see the upstream."""
    return cpu / floor if floor > 0 else math.nan


@dataclass(frozen=True)
class Rss:
    """The daemon's RSS (MB) in the RSS phase: at its start, then after 10,000 and 10,000 more
    requests, each read at once (the burst's peak, about) and once the daemon has been quiet
    for `QUIET_WAIT` seconds (what it keeps between bursts: it gives the C library's free
    memory back once no request has come for a second, `proxy.memory`)."""

    start: float
    first: float
    first_quiet: float
    second: float
    second_quiet: float

    def text(self) -> str:
        return (
            f"{self.start:.1f} MB at start of the RSS phase, {self.first:.1f} MB after 10,000 "
            f"more requests ({self.first_quiet:.1f} MB once quiet), {self.second:.1f} MB after "
            f"another 10,000 ({self.second_quiet:.1f} MB once quiet)"
        )


QUIET_WAIT = 3.0


def _rss_phase(daemon: str, pid: int, concurrency: int) -> Rss:
    """10,000 requests twice (non-streaming and 20-chunk streams of the captured Claude Code
    request, alternating), the RSS read after each at once and once quiet."""
    body, _ = _capture_body("bench-20", True)
    payloads = [json.dumps({**body, "stream": s}).encode() for s in (False, True)]

    async def run(total: int) -> None:
        left = total

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await _one(session, daemon + "/v1/messages", payloads[left % 2])

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))

    readings = [_rss_mb(pid)]
    for _ in range(2):
        asyncio.run(run(10_000))
        readings.append(_rss_mb(pid))
        time.sleep(QUIET_WAIT)
        readings.append(_rss_mb(pid))
    return Rss(*readings)


# --- the run ----------------------------------------------------------------------------------


def _config(upstream: str, observe: str) -> str:
    return (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "oai,bench"\n'
        f'[[providers]]\nname = "oai"\nformat = "openai"\napi_base_url = "{upstream}/v1"\n'
        'api_key = "k"\nmodels = ["bench*"]\nallow_private_network = true\n'
        f'[[providers]]\nname = "ant"\nformat = "anthropic"\napi_base_url = "{upstream}"\n'
        'api_key = "k"\nmodels = ["bench*"]\nallow_private_network = true\n'
        "[security.ssrf_protection]\nallow_localhost = true\n" + observe
    )


def _print_result(r: Result) -> None:
    line = (
        f"{r.case.name:34} added p50 {r.added_p50:6.3f} p99 {r.added_p99:6.3f} ms  "
        f"CPU c1 {r.proxy_cpu_c1:5.3f} ms ({r.ratio_c1:4.2f}x)  "
        f"c32 {r.proxy_cpu:5.3f} ms, floor {r.floor:5.3f} ms, {r.ratio:4.2f}x  "
        f"{r.rps:6,.0f} req/s  upstream wake-ups {r.upstream_wakeups:4.2f}"
    )
    if r.case.stream:
        line += f"  added TTFT {r.added_ttft:6.3f} ms"
    print(line, flush=True)


def _markdown(results: list[Result], rss: Rss | None) -> None:
    print()
    print(
        "| case | added p50 | added p99 | added TTFT | CPU/request (c32) | floor | ratio "
        "| ratio c1 | req/s (c32) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ttft = f"{r.added_ttft:.2f} ms" if r.case.stream else ""
        print(
            f"| {r.case.name} | {r.added_p50:.2f} ms | {r.added_p99:.2f} ms | {ttft} "
            f"| {r.proxy_cpu:.3f} ms | {r.floor:.3f} ms | {r.ratio:.2f}x | {r.ratio_c1:.2f}x "
            f"| {r.rps:,.0f} |"
        )
    if rss is not None:
        print(f"\nDaemon RSS: {rss.text()}.")


def _targets(results: list[Result], rss: Rss | None) -> bool:
    misses = []
    for r in results:
        if r.ratio > r.case.target:
            misses.append(f"{r.case.name}: CPU {r.ratio:.2f}x the floor (target {r.case.target}x)")
        if r.added_p50 > 0.5 and not r.case.stream:
            misses.append(f"{r.case.name}: added p50 {r.added_p50:.3f} ms (target 0.5 ms)")
        if r.case.stream and r.added_ttft > 0.5:
            misses.append(f"{r.case.name}: added TTFT {r.added_ttft:.3f} ms (target 0.5 ms)")
    if rss is not None:  # what the daemon keeps: read once it is quiet
        if rss.first_quiet > 50:
            misses.append(f"RSS {rss.first_quiet:.1f} MB after 10,000 requests (target 50 MB)")
        if rss.second_quiet - rss.first_quiet > 2:
            grew = rss.second_quiet - rss.first_quiet
            misses.append(f"RSS grew {grew:.1f} MB over the next 10,000 requests")
    print()
    for miss in misses:
        print(f"target missed: {miss}")
    if not misses:
        print("every target met")
    return not misses


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=1000, help="sequential requests per case (concurrency 1)"
    )
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="duration of each concurrent run"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="run only cases whose name contains this (repeatable)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the 20,000-request RSS phase")
    parser.add_argument("--markdown", action="store_true", help="also print the README table")
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="another checkout whose daemon is measured interleaved (A/B)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="with --against: rounds per case")
    parser.add_argument(
        "--observe",
        default="",
        help="TOML appended to the daemon's config (e.g. observability sections)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="the daemon's; at info (a daemon's default) it writes one line per "
        "request, to /dev/null here",
    )
    parser.add_argument(
        "--baseline-observe",
        default=None,
        help="with --against: TOML appended to that daemon's config instead of --observe "
        "(with `--against .`, the same code with observability off, e.g. "
        "'[journal]\\nenabled = false\\n[metrics]\\nenabled = false')",
    )
    parser.add_argument(
        "--baseline-log-level",
        default=None,
        help="with --against: that daemon's log level instead of --log-level",
    )
    parser.add_argument(
        "--relay",
        action="append",
        default=[],
        choices=("aiohttp", "httptools"),
        help="also measure this reference relay (tests/bench/bench_relay.py), case by case, "
        "exactly like the daemon: what the extra hop itself costs (repeatable)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run every daemon on the last CPU and this client and the upstream on the others: "
        "two daemons compared with --against then share one core's conditions, not whichever "
        "placement the scheduler gave each process",
    )
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    upstream_process = multiprocessing.get_context("spawn").Process(
        target=_run_upstream, args=(send,), daemon=True
    )
    upstream_process.start()
    upstream = f"http://127.0.0.1:{receive.recv()}"
    assert upstream_process.pid is not None
    cases = [c for c in _cases() if not args.case or any(p in c.name for p in args.case)]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(_config(upstream, args.observe))
        daemons = [_start_daemon(REPO, config, Path(tmp), args.log_level)]
        if args.against is not None:
            baseline = Path(tmp) / "baseline.toml"
            observe = args.observe if args.baseline_observe is None else args.baseline_observe
            baseline.write_text(_config(upstream, observe))
            level = args.log_level if args.baseline_log_level is None else args.baseline_log_level
            daemons.insert(0, _start_daemon(args.against.resolve(), baseline, Path(tmp), level))
        relays = {kind: _start_relay(kind, upstream) for kind in args.relay}
        if args.pin:
            measured = [p.pid for _, p in [*daemons, *relays.values()]]
            _pin(measured, [os.getpid(), upstream_process.pid])
        try:
            if args.against is not None:
                _compare(cases, daemons, upstream, upstream_process.pid, args)
                met = True
            else:
                met = _run(cases, daemons[0], relays, upstream, upstream_process.pid, args)
        finally:
            for _, process in [*daemons, *relays.values()]:
                process.terminate()
                process.wait(10)
            upstream_process.terminate()
    sys.exit(0 if met else 1)


def _pin(daemons: list[int], others: list[int]) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    for pid in daemons:
        os.sched_setaffinity(pid, {cpus[-1]})
    for pid in others:
        os.sched_setaffinity(pid, set(cpus[:-1]))


def serve_command(config: Path, port: int, log_level: str) -> list[str]:
    """The daemon's command line: run from a checkout's directory, it serves that code."""
    return [
        sys.executable,
        *("-m", "cli", "serve", "--config", str(config)),
        *("--port", str(port), "--log-level", log_level),
    ]


def _start_daemon(
    tree: Path, config: Path, tmp: Path, log_level: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """`llmproxy serve` from `tree` (`python -m cli` imports that checkout's code first), with
    its own state dir: the request journal goes there, as a daemon's goes to its state dir."""
    port = free_port()
    state = tmp / f"state-{port}"
    process = subprocess.Popen(
        serve_command(config, port, log_level),
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LLMPROXY_STATE_DIR": str(state), "XDG_DATA_HOME": str(tmp)},
    )
    wait_for(port)
    return f"http://127.0.0.1:{port}", process


def _start_relay(kind: str, upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests/bench/bench_relay.py"), kind, str(port), upstream],
        cwd=REPO,
    )
    wait_for(port)
    return f"http://127.0.0.1:{port}", process


def _relayed(case: Case, kind: str) -> Case:
    """What a relay is sent: the upstream's own request (the baseline's), which it forwards."""
    return replace(
        case, name=f"relay {kind}: {case.name}", client_path=case.provider_path, body=case.direct
    )


def _run(
    cases: list[Case],
    daemon: tuple[str, subprocess.Popen[bytes]],
    relays: dict[str, tuple[str, subprocess.Popen[bytes]]],
    upstream: str,
    upstream_pid: int,
    args: argparse.Namespace,
) -> bool:
    url, process = daemon
    pids = (process.pid, upstream_pid)
    print(
        f"daemon pid {process.pid} (RSS {_rss_mb(process.pid):.1f} MB at start), upstream pid "
        f"{upstream_pid}; {args.requests} sequential requests, then {args.seconds:g} s at "
        f"concurrency {args.concurrency}, per case",
        flush=True,
    )
    results = []
    relayed: list[Result] = []
    for case in cases:
        results.append(measure(case, url, upstream, pids, args))
        _print_result(results[-1])
        for kind, (relay_url, relay) in relays.items():
            relay_pids = (relay.pid, upstream_pid)
            relayed.append(measure(_relayed(case, kind), relay_url, upstream, relay_pids, args))
            _print_result(relayed[-1])
    rss = None if args.no_rss else _rss_phase(url, process.pid, args.concurrency)
    if rss is not None:
        print(f"RSS {rss.text()}")
    if args.markdown:
        _markdown(results + relayed, rss)
    return _targets(results, rss)


def _change(before: float, after: float) -> float:
    """Percent; NaN when a run too short for /proc's CPU ticks measured nothing before."""
    return (after / before - 1) * 100 if before > 0 else math.nan


def _compare(
    cases: list[Case],
    daemons: list[tuple[str, subprocess.Popen[bytes]]],
    upstream: str,
    upstream_pid: int,
    args: argparse.Namespace,
) -> None:
    """Before (`--against`) and after (this checkout), interleaved; medians of the rounds."""
    print(
        f"before: {args.against} (pid {daemons[0][1].pid}); after: {REPO} "
        f"(pid {daemons[1][1].pid}); {args.repeat} interleaved rounds per case",
        flush=True,
    )
    for case in cases:
        rounds: list[list[Result]] = [[], []]
        for round_ in range(args.repeat):
            # Each side goes first every other round: what running second does to a side's
            # measurement (a warmer upstream, a load that comes and goes) falls on both.
            for side in (0, 1) if round_ % 2 == 0 else (1, 0):
                url, process = daemons[side]
                rounds[side].append(measure(case, url, upstream, (process.pid, upstream_pid), args))
        before, after = (
            [
                statistics.median(getattr(r, f) for r in side)
                for f in (
                    "proxy_cpu_c1",
                    "proxy_cpu",
                    "ratio",
                    "added_p50",
                    "added_ttft",
                    "upstream_wakeups",
                )
            ]
            for side in rounds
        )
        print(
            f"{case.name:34} CPU c1 {before[0]:5.3f} -> {after[0]:5.3f} ms "
            f"({_change(before[0], after[0]):+5.1f}%)  c32 {before[1]:5.3f} -> "
            f"{after[1]:5.3f} ms ({_change(before[1], after[1]):+5.1f}%), floor ratio "
            f"{before[2]:4.2f}x -> {after[2]:4.2f}x  added p50 {before[3]:5.3f} -> "
            f"{after[3]:5.3f} ms"
            + (f"  TTFT {before[4]:5.3f} -> {after[4]:5.3f} ms" if case.stream else "")
            + f"  upstream wake-ups {before[5]:4.2f} -> {after[5]:4.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
