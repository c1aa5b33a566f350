"""`llmproxy serve --workers N`: N daemon processes on one port, watched by one supervisor.

Each worker is `llmproxy serve` itself, started with `LLMPROXY_WORKER=<index>` in its
environment, which makes it bind with SO_REUSEPORT (the kernel spreads new connections across
the workers) and report its index and supervisor in `/health`. Workers share rate limits,
breakers and health through `[state] backend = "redis"`; without it each keeps its own, and
the supervisor says so at start.

SIGHUP (`llmproxy reload`) is passed to every worker. SIGTERM or SIGINT to the supervisor is
passed to every worker, each of which drains its
in-flight requests and exits; the supervisor exits when all have. Workers run in their own
process group, so a terminal's Ctrl-C reaches them once, through the supervisor (a second
signal would cut the drain short; under systemd, `KillMode=mixed` does the same), and they get
SIGTERM if the supervisor dies. A worker that dies on its
own takes the others down with it (exit status 1), so systemd's `Restart=` restarts the set
whole instead of leaving it short of a worker. The supervisor writes the workers' pids to
`workers-<port>.json` in the state dir for `llmproxy status`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import orjson

from cli._config import state_dir
from cli._output import stderr, styled
from proxy.state import WORKER_ENV

POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


def workers_file(port: int) -> Path:
    return state_dir() / f"workers-{port}.json"


def run_workers(count: int, serve_args: list[str], port: int, *, shared: bool) -> int:
    """Start `count` workers of `llmproxy serve <serve_args>` and supervise them; the exit code."""
    if not shared:
        stderr().print(
            styled(
                ("warning:", "yellow"),
                f" {count} workers without [state] backend = "
                '"redis": each worker keeps its own rate limits, cooldowns and health '
                "(they do not share them)",
            )
        )
    command = [sys.executable, "-m", "cli", "serve", *serve_args]
    workers = [
        subprocess.Popen(
            command,
            env={**os.environ, WORKER_ENV: str(index)},
            process_group=0,
            preexec_fn=_end_with_parent,
        )
        for index in range(1, count + 1)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _signal_all(workers)

    def reload(signum: int, frame: FrameType | None) -> None:
        _signal_all(workers, signal.SIGHUP)  # `llmproxy reload`: each worker re-reads the file

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    if (hup := getattr(signal, "SIGHUP", None)) is not None:
        previous[hup] = signal.signal(hup, reload)
    path = workers_file(port)
    _write(path, workers)
    failed = False
    try:
        while any(worker.poll() is None for worker in workers):
            if (
                not stopping
                and (dead := next((w for w in workers if w.poll() is not None), None)) is not None
            ):
                stderr().print(
                    styled(
                        (
                            f"worker pid {dead.pid} exited with status "
                            f"{dead.returncode}; stopping the others",
                            "red",
                        )
                    )
                )
                failed = stopping = True
                _signal_all(workers)
            time.sleep(POLL_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return 1 if failed or any(w.returncode not in (0, -signal.SIGTERM) for w in workers) else 0


def _end_with_parent() -> None:
    """In the worker before exec: SIGTERM when the supervisor dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_all(
    workers: list[subprocess.Popen[bytes]], sig: signal.Signals = signal.SIGTERM
) -> None:
    for worker in workers:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(sig)


def _write(path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(orjson.dumps({"supervisor": os.getpid(), "workers": [w.pid for w in workers]}))


def read_workers(port: int) -> tuple[int, list[int]] | None:
    """The supervisor's pid and its workers' pids, if a supervisor on `port` wrote them."""
    try:
        data = orjson.loads(workers_file(port).read_bytes())
        return int(data["supervisor"]), [int(pid) for pid in data["workers"]]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
