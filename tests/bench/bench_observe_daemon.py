"""Benchmark: what observability costs the daemon, in instructions per request, off and on.

Not a test. Run:

    .venv/bin/python tests/bench/bench_observe_daemon.py [--requests 400] [--case NAME ...]

`bench_proxy.py --against .` compares two daemons by the CPU time /proc reports, which on a
shared machine moves by more than the few percent it measures. Here each daemon (the same code,
`llmproxy serve`) runs under `valgrind --tool=callgrind`, every thread counted together
(`--separate-threads=no`: the journal's writer too), and the instructions it executes are read
for the same requests: counters zeroed after a warm-up, dumped after the run (`callgrind_control`).
Instruction counts do not move with the machine's load. Off: log level warning, `[journal]
enabled = false`, `[metrics] enabled = false`; on: the defaults at info (the request line to
/dev/null, as `bench_proxy.py` sends it, the journal in a temporary state directory, metrics).
The on-daemon's count is read once every request of the run is in its journal, so the writer's
work for them is in it.

Instructions are CPU work only: the kernel's (system calls, context switches) is not in them, so
the voluntary and involuntary context switches of the daemon's threads over the same requests
are printed beside them (from /proc).

The daemon hands its records to the sinks (log line, metrics, journal) in batches, every
`[journal] flush_ms` or 256 records. Under valgrind it serves about fifty times fewer requests a
second, so its default 200 ms would make batches fifty times smaller than a daemon's under the
native benchmark (a few records instead of 100-256), and a batch's fixed cost (a write, a
transaction, a wake-up) fifty times larger per request. Both daemons therefore run with
`flush_ms = 10000` (`--journal-flush-ms`): batches of up to 256 records, as natively.

The upstream and the cases are `bench_proxy.py`'s; `--concurrency` (default 32, as its
throughput runs) sets how many requests are in flight.

`--against DIR --side same` counts what a change does: the `off` daemon runs from DIR (a `git
worktree` of the commit before it), the `same` one from this checkout, both with observability
off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from bench_common import free_port
from bench_proxy import REPO, Case, _cases, _config, _one, _run_upstream, serve_command

SIDES = {
    # name: (log level, journal, metrics)
    "off": ("warning", False, False),
    "same": ("warning", False, False),  # a second `off`: the method's own noise
    "on": ("info", True, True),
    "log": ("info", False, False),
    "journal": ("warning", True, False),
    "metrics": ("warning", False, True),
}
DEFAULT_CASES = ("openai>openai non-stream", "claude-code>openai non-stream")
EVERY_CHUNK = 255
"""Requests sent after the warm-up, before the count: one batch of 255 records, which the
journal writes with a statement of every size (128 + 64 + ... + 1 rows). A daemon that has run
a while has prepared each of them once; one prepared in the counted window (its batches are
cut by the flush timer, not only at 256 records) would add millions of instructions that a
running daemon does not spend again."""


@dataclass
class Daemon:
    url: str
    process: subprocess.Popen[bytes]
    out: Path
    state: Path
    journal: bool

    @property
    def pid(self) -> int:
        return self.process.pid


def _start(side: str, config: Path, tmp: Path, level: str, journal: bool, tree: Path) -> Daemon:
    port = free_port()
    state = tmp / f"state-{side}"
    out = tmp / f"callgrind-{side}"
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=no",
            "--trace-children=no",
            f"--callgrind-out-file={out}.%p",
            *serve_command(config, port, level),
        ],
        cwd=tree,  # `python -m cli` imports that checkout's code first
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "LLMPROXY_STATE_DIR": str(state),
            "XDG_DATA_HOME": str(tmp),
            "PYTHONHASHSEED": "0",  # the same dict and set layouts in every daemon
        },
    )
    daemon = Daemon(f"http://127.0.0.1:{port}", process, out, state, journal)
    asyncio.run(_ready(daemon))
    return daemon


async def _ready(daemon: Daemon) -> None:
    deadline = time.monotonic() + 300  # a Python start under valgrind takes a while
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if daemon.process.poll() is not None:
                raise RuntimeError(
                    f"the daemon under valgrind exited ({daemon.process.returncode})"
                )
            try:
                async with session.get(daemon.url + "/health/live") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the daemon under valgrind did not start")


async def _send(url: str, payload: bytes, n: int, concurrency: int) -> None:
    left = n

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await _one(session, url, payload)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, n))))


def _control(pid: int, option: str) -> None:
    subprocess.run(
        ["callgrind_control", option, str(pid)], check=True, capture_output=True, timeout=120
    )


def _switches(pid: int) -> tuple[int, int]:
    """Voluntary and involuntary context switches of every thread of `pid`."""
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary += int(line.split()[1])
    return voluntary, involuntary


def _journaled(state: Path) -> int:
    path = state / "requests.db"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _dumped(daemon: Daemon, before: set[Path]) -> int:
    """The instructions in the dump `callgrind_control -d` just wrote."""
    for _ in range(600):
        new = set(daemon.out.parent.glob(f"{daemon.out.name}.{daemon.pid}*")) - before
        for path in new:
            text = path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError("callgrind wrote no dump")


@dataclass
class Reading:
    instructions: float  # per request
    voluntary: float
    involuntary: float


def _measure(daemon: Daemon, case: Case, args: argparse.Namespace, journaled: int) -> Reading:
    url = daemon.url + case.client_path
    payload = json.dumps(case.body).encode()
    asyncio.run(_send(url, payload, args.warmup, args.concurrency))
    _settle(daemon, journaled + args.warmup, args)
    asyncio.run(_send(url, payload, EVERY_CHUNK, args.concurrency))
    _settle(daemon, journaled + args.warmup + EVERY_CHUNK, args)
    _control(daemon.pid, "-z")
    switches = _switches(daemon.pid)
    asyncio.run(_send(url, payload, args.requests, args.concurrency))
    _settle(daemon, journaled + args.warmup + EVERY_CHUNK + args.requests, args)
    after = _switches(daemon.pid)
    before = set(daemon.out.parent.glob(f"{daemon.out.name}.{daemon.pid}*"))
    _control(daemon.pid, "-d")
    total = _dumped(daemon, before)
    n = args.requests
    return Reading(total / n, (after[0] - switches[0]) / n, (after[1] - switches[1]) / n)


def _settle(daemon: Daemon, journaled: int, args: argparse.Namespace) -> None:
    """Until the records of the requests sent so far have gone to every sink: the counted
    instructions are those of the counted requests' records, on every side."""
    time.sleep(args.journal_flush_ms / 1000 + 1.0)  # the observer's timer has fired
    if not daemon.journal:
        return
    deadline = time.monotonic() + 300
    while _journaled(daemon.state) < journaled:  # and the journal's thread has written them
        if time.monotonic() > deadline:
            raise RuntimeError(f"the journal did not reach {journaled} requests")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per case")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="requests before each count (default: as many as --requests, so the journal's "
        "statements for batches of that size are prepared before the count, as in a daemon "
        "that has run a while)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="cases whose name contains this, or the case of that whole name (repeatable; "
        f"default: {', '.join(DEFAULT_CASES)})",
    )
    parser.add_argument(
        "--side",
        action="append",
        choices=[s for s in SIDES if s != "off"],
        default=[],
        help="daemons measured against `off` (repeatable; default: on; `log`, `journal` and "
        "`metrics` turn on one sink each)",
    )
    parser.add_argument(
        "--journal-flush-ms",
        type=int,
        default=10_000,
        help="the `[journal] flush_ms` of the daemons (default 10,000: see the module docstring)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="copy the dumps to this directory")
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="run the `off` daemon from this checkout (a `git worktree` of the commit before a "
        "change): with `--side same`, what the change does to the instructions per request",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (Debian: apt-get install valgrind)")
    args.side = args.side or ["on"]
    args.warmup = args.warmup or args.requests
    wanted = args.case or list(DEFAULT_CASES)
    names = {c.name for c in _cases()}
    cases = [
        c
        for c in _cases()
        # a whole name chooses that case alone ("... stream 20" is not "... stream 200")
        if any(c.name == w if w in names else w in c.name for w in wanted)
    ]

    receive, send = multiprocessing.Pipe(duplex=False)
    upstream_process = multiprocessing.get_context("spawn").Process(
        target=_run_upstream, args=(send,), daemon=True
    )
    upstream_process.start()
    upstream = f"http://127.0.0.1:{receive.recv()}"
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        daemons = {}
        try:
            for side in ["off", *args.side]:
                level, journal, metrics = SIDES[side]
                config = tmp / f"{side}.toml"
                observe = (
                    f"[journal]\nenabled = {str(journal).lower()}\n"
                    f"flush_ms = {args.journal_flush_ms}\n"
                    f"[metrics]\nenabled = {str(metrics).lower()}\n"
                )
                config.write_text(_config(upstream, observe))
                tree = args.against.resolve() if side == "off" and args.against else REPO
                daemons[side] = _start(side, config, tmp, level, journal, tree)
            print(
                f"{args.requests} requests per case at concurrency {args.concurrency}, after "
                f"{args.warmup} of warm-up and {EVERY_CHUNK} more; per request, every thread of "
                "the daemon",
                flush=True,
            )
            journaled = dict.fromkeys(daemons, 0)
            for case in cases:
                readings = {}
                for side, daemon in daemons.items():
                    readings[side] = _measure(daemon, case, args, journaled[side])
                    journaled[side] += args.warmup + EVERY_CHUNK + args.requests
                off = readings["off"]
                print(
                    f"{case.name:34} off: {off.instructions:11,.0f} instructions, "
                    f"{off.voluntary:5.2f}+{off.involuntary:4.2f} context switches",
                    flush=True,
                )
                for side in args.side:
                    on = readings[side]
                    change = (on.instructions / off.instructions - 1) * 100
                    print(
                        f"{'':34} {side + ':':8} {on.instructions:11,.0f} ({change:+5.1f}%), "
                        f"{on.voluntary:5.2f}+{on.involuntary:4.2f}",
                        flush=True,
                    )
        finally:
            for daemon in daemons.values():
                daemon.process.terminate()
                try:
                    daemon.process.wait(60)
                except subprocess.TimeoutExpired:
                    daemon.process.kill()
            upstream_process.terminate()
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                for path in tmp.glob("callgrind-*"):
                    shutil.copy(path, args.keep / path.name)


if __name__ == "__main__":
    main()
