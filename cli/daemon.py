"""The background daemon: `llmproxy serve --detach` starts it, `llmproxy status` and
`llmproxy stop` manage it. Its pid, address and log live in the state dir
(`$LLMPROXY_STATE_DIR`, else the platform's user state dir, e.g. ~/.local/state/llmproxy)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import typer

from cli._config import CONFIG_OPTION, load_optional, state_dir
from cli._engine import DEFAULT_DAEMON_URL, daemon_url
from cli._output import fail, print_json, stderr, stdout
from cli.workers import read_workers

PID_FILE = "llmproxy.pid"
STATE_FILE = "daemon.json"
LOG_FILE = "llmproxy.log"
EXIT_NOT_RUNNING = 3  # as LSB init scripts and `systemctl status` report it


@dataclass(frozen=True, slots=True)
class DaemonState:
    pid: int
    url: str
    log: str
    started: float


def read_state() -> DaemonState | None:
    try:
        data = orjson.loads((state_dir() / STATE_FILE).read_bytes())
        return DaemonState(int(data["pid"]), str(data["url"]), str(data["log"]),
                           float(data["started"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _clear_state() -> None:
    for name in (PID_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir() / name).unlink()


def pid_alive(pid: int) -> bool:
    """A live (not zombie) process that is an llmproxy server, as far as this OS can tell."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        with contextlib.suppress(OSError):
            if proc.joinpath("stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return False
            # A recycled pid belongs to some other program.
            return b"serve" in proc.joinpath("cmdline").read_bytes()
    return True


def health(url: str, timeout: float = 0.5) -> dict[str, Any] | None:
    """`GET /health` without the environment's HTTP proxy; None unless llmproxy answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url.rstrip("/") + "/health", timeout=timeout) as response:
            body = orjson.loads(response.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("status") == "ok" else None


def start_detached(serve_args: list[str], url: str, *, wait: float = 20.0) -> DaemonState:
    """Start `llmproxy serve <serve_args>` in its own session, logging to the state dir, and
    return once it answers on `url` (or exit with the log's last lines)."""
    current = read_state()
    if current is not None and pid_alive(current.pid):
        fail(f"llmproxy is already running (pid {current.pid}) at {current.url}; "
             "`llmproxy stop` first")
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = directory / LOG_FILE
    command = [sys.executable, "-m", "cli", "serve", *serve_args]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            close_fds=True, **_detached(),
        )
    state = DaemonState(process.pid, url, str(log_path), time.time())
    (directory / PID_FILE).write_text(f"{process.pid}\n")
    (directory / STATE_FILE).write_bytes(orjson.dumps(asdict(state)))
    deadline = time.monotonic() + wait
    while health(url) is None:
        if process.poll() is not None:
            _clear_state()
            fail(f"the daemon exited with status {process.returncode}; last lines of "
                 f"{log_path}:\n{_tail(log_path)}", code=1)
        if time.monotonic() > deadline:
            fail(f"the daemon (pid {process.pid}) did not answer on {url} within {wait:.0f}s; "
                 f"see {log_path}", code=1)
        time.sleep(0.1)
    return state


def _detached() -> dict[str, Any]:
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def daemon_stop(
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for a graceful "
                                  "shutdown before the process is killed."),
) -> None:
    """Stop the daemon started with `llmproxy serve --detach`.

    Examples:
      llmproxy stop
    """
    state = read_state()
    if state is None or not pid_alive(state.pid):
        _clear_state()
        stderr().print("llmproxy is not running")
        return
    os.kill(state.pid, signal.SIGTERM)  # aiohttp drains in-flight requests, then exits
    deadline = time.monotonic() + timeout
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(state.pid):
        os.kill(state.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        stderr().print(f"[yellow]killed pid {state.pid} after {timeout:.0f}s[/]")
    _clear_state()
    stderr().print(f"stopped llmproxy (pid {state.pid})")


def daemon_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str | None = typer.Option(None, "--url", help="Ask the daemon at this URL."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show whether the daemon runs and answers.

    Exit status 0 when it answers, 3 when nothing runs, 1 when a started daemon does not answer.

    Examples:
      llmproxy status
      llmproxy status --json
    """
    state = read_state()
    managed = state if state is not None and pid_alive(state.pid) else None
    if url is None:
        settings = load_optional(config) if managed is None else None
        url = managed.url if managed else daemon_url(settings) if settings else DEFAULT_DAEMON_URL
    found = health(url)
    report = {
        "running": found is not None or managed is not None,
        "answering": found is not None,
        "url": url,
        "pid": managed.pid if managed else None,
        "detached": managed is not None,
        "uptime_s": round(time.time() - managed.started) if managed else None,
        "log": managed.log if managed else None,
        "providers": found.get("providers", []) if found else [],
        "targets": found.get("targets", []) if found else [],
        "state": found.get("state") if found else None,
        **_workers(found),
    }
    if as_json:
        print_json(report)
    else:
        _print_status(report)
    if found is None:
        raise typer.Exit(1 if managed else EXIT_NOT_RUNNING)


def _workers(found: dict[str, Any] | None) -> dict[str, Any]:
    """Under `serve --workers N`: the supervisor and each worker, alive or not."""
    supervisor = found.get("supervisor") if found else None
    port = found.get("port") if found else None
    listed = read_workers(port) if isinstance(port, int) else None
    if listed is None or listed[0] != supervisor:
        return {}
    return {"supervisor": supervisor,
            "workers": [{"pid": pid, "alive": pid_alive(pid)} for pid in listed[1]]}


def _print_status(report: dict[str, Any]) -> None:
    out = stdout()
    if not report["running"]:
        out.print(f"not running (nothing answers at {report['url']})")
        return
    state = "[green]running[/]" if report["answering"] else "[red]not answering[/]"
    pid = f"  pid {report['pid']}" if report["pid"] else "  (not started by --detach)"
    out.print(f"{state}  {report['url']}{pid}", highlight=False)
    if report["uptime_s"] is not None:
        out.print(f"uptime     {report['uptime_s']} s")
    if report.get("workers"):
        pids = ", ".join(f"{w['pid']}" + ("" if w["alive"] else " (gone)")
                         for w in report["workers"])
        out.print(f"workers    {len(report['workers'])} (supervisor pid "
                  f"{report['supervisor']}): {pids}", markup=False, highlight=False)
    if report.get("state"):
        state = report["state"]
        shared = f"redis, {state.get('redis')}" if state.get("backend") == "redis" else "memory"
        out.print(f"state      {shared}", markup=False, highlight=False)
    if report["providers"]:
        out.print(f"providers  {', '.join(report['providers'])}", markup=False)
    unhealthy = [t for t in report["targets"] if t.get("state") != "closed"
                 or (t.get("cooldown_left") or 0) > 0]
    for target in unhealthy:
        cooling = float(target.get("cooldown_left") or 0)
        state = f"{target.get('state')}" + (f", cooling {cooling:.0f}s" if cooling else "")
        out.print(f"  {target.get('target')}: {state}  {target.get('reason') or ''}".rstrip(),
                  markup=False, highlight=False)
    if report["log"]:
        out.print(f"log        {report['log']}", markup=False)
