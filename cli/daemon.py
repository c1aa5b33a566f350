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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from cli._address import (
    DEFAULT_DAEMON_URL,
    START_HINT,
    daemon_url,
    health,
    normalize_url,
    url_option,
)
from cli._config import load_address, state_dir
from cli._options import CONFIG_OPTION
from cli._output import fail, print_json, stderr, stdout, styled
from cli.workers import read_workers
from proxy.frozen import field, frozen, to_dict

if TYPE_CHECKING:
    from proxy.config.address import DaemonAddress

PID_FILE = "llmproxy.pid"
STATE_FILE = "daemon.json"
LOG_FILE = "llmproxy.log"
EXIT_NOT_RUNNING = 3  # as LSB init scripts and `systemctl status` report it


@frozen
class DaemonState:
    pid: int
    url: str
    log: str
    started: float


def read_state() -> DaemonState | None:
    try:
        data = orjson.loads((state_dir() / STATE_FILE).read_bytes())
        return DaemonState(
            int(data["pid"]), str(data["url"]), str(data["log"]), float(data["started"])
        )
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


def start_detached(serve_args: list[str], url: str, *, wait: float = 20.0) -> DaemonState:
    """Start `llmproxy serve <serve_args>` in its own session, logging to the state dir, and
    return once it answers on `url` (or exit with the log's last lines)."""
    current = read_state()
    if current is not None and pid_alive(current.pid):
        fail(
            f"llmproxy is already running (pid {current.pid}) at {current.url}; "
            "`llmproxy stop` first"
        )
    if (other := health(url)) is not None:
        fail(
            f"another llmproxy (pid {other.get('pid', '?')}) already answers at {url}; "
            "`llmproxy stop` it first, or pass --port"
        )
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = directory / LOG_FILE
    started_at = log_path.stat().st_size if log_path.exists() else 0
    command = [sys.executable, "-m", "cli", "serve", *serve_args]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
            **_detached(),
        )
    state = DaemonState(process.pid, url, str(log_path), time.time())
    (directory / PID_FILE).write_text(f"{process.pid}\n")
    (directory / STATE_FILE).write_bytes(orjson.dumps(to_dict(state)))
    deadline = time.monotonic() + wait
    while (answer := health(url)) is None or answer.get("pid") not in (None, process.pid):
        if process.poll() is not None:
            _clear_state()
            fail(
                f"the daemon exited with status {process.returncode}: "
                f"{_last_error(log_path, started_at)}\n(log: {log_path})",
                code=1,
            )
        if time.monotonic() > deadline:
            fail(
                f"the daemon (pid {process.pid}) did not answer on {url} within {wait:.0f}s; "
                f"see {log_path}",
                code=1,
            )
        time.sleep(0.1)
    return state


def _detached() -> dict[str, Any]:
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def _last_error(path: Path, offset: int) -> str:
    """What this start wrote to the log: its `error:` line when there is one (the daemon's own
    one-line diagnosis), else its last lines."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(the log cannot be read)"
    errors = [line for line in lines if line.startswith("error:")]
    return errors[-1].removeprefix("error:").strip() if errors else "\n".join(lines[-15:])


@frozen
class Found:
    """The daemon at one address: what answers there, and our record of it if we started it."""

    url: str
    answer: dict[str, Any] | None
    managed: DaemonState | None
    api_key: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        if self.managed is not None:
            return self.managed.pid
        pid = (self.answer or {}).get("pid")
        return pid if isinstance(pid, int) else None


URL_OPTION = typer.Option(
    None,
    "--url",
    help="The daemon at this URL (default: the one "
    "`serve --detach` started, else the configured address).",
)


API_KEY_OPTION = typer.Option(
    None,
    "--api-key",
    envvar="LLMPROXY_API_KEY",
    help="The client "
    "key (default: the config's); a daemon with client keys lists "
    "its providers and targets only to a key holder.",
)


def find_daemon(url: str | None, config: Path | None, api_key: str | None = None) -> Found:
    """`--url`, else the address of an explicit `--config`, else the detached daemon, else the
    configured address, else the default one.
    Reads the config for its address and client key only: no provider secret is needed."""
    state = read_state()
    managed = state if state is not None and pid_alive(state.pid) else None
    address = None
    if url is not None:
        url = url_option(url)
    elif config is not None:  # named like --url: its address, whatever else was detached
        address = load_address(config)
        url = daemon_url(address) if address else DEFAULT_DAEMON_URL
    elif managed is not None:
        url = managed.url
    else:
        address = load_address(config)
        url = daemon_url(address) if address else DEFAULT_DAEMON_URL
    if managed is not None and normalize_url(managed.url) != url:
        managed = None  # another daemon's pid and log are not this one's
    key = api_key or _configured_key(address, config)
    return Found(url, health(url, api_key=key), managed, key)


def _configured_key(address: DaemonAddress | None, config: Path | None) -> str | None:
    """The config's first client key. A config that does not load only costs the detail (the
    pid and the reload outcome need no key), so `stop` and `status` still work beside it."""
    if address is not None:
        return address.api_key
    from proxy.config.address import read_address
    from proxy.config.locate import find_config_path
    from proxy.errors import ConfigError

    try:
        path = find_config_path(config, os.environ)
    except ConfigError:
        return None
    found = read_address(path, os.environ) if path is not None else None
    return found.api_key if found is not None else None


def daemon_stop(
    timeout: float = typer.Option(
        15.0,
        "--timeout",
        help="Seconds to wait for a graceful shutdown before the process is killed.",
    ),
    url: str | None = URL_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Stop the daemon: the one `llmproxy serve --detach` started, or one running in the
    foreground on this machine.

    \b
    Examples:
      llmproxy stop
      llmproxy stop --url http://127.0.0.1:4000
    """
    found = find_daemon(url, config)
    pid = found.pid
    if pid is None or (found.managed is None and found.answer is None):
        _clear_state()
        stderr().print(f"llmproxy is not running (nothing answers at {found.url})")
        return
    try:
        os.kill(pid, signal.SIGTERM)  # aiohttp drains in-flight requests, then exits
    except ProcessLookupError:
        fail(
            f"the daemon at {found.url} (pid {pid}) runs on another machine or in another "
            "container; stop it there",
            code=1,
        )
    except PermissionError:
        fail(
            f"the daemon at {found.url} (pid {pid}) belongs to another user; stop it as that "
            "user (e.g. `sudo systemctl stop llmproxy`)",
            code=1,
        )
    deadline = time.monotonic() + timeout
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(pid):
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        stderr().print(styled((f"killed pid {pid} after {timeout:.0f}s", "yellow")))
    if found.managed is not None:
        _clear_state()
    how = "" if found.managed is not None else ", running in the foreground"
    stderr().print(f"stopped llmproxy (pid {pid}{how})")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid_alive(pid)


def daemon_reload(
    url: str | None = URL_OPTION,
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the outcome."),
    config: Path | None = CONFIG_OPTION,
    api_key: str | None = API_KEY_OPTION,
) -> None:
    """Re-read the running daemon's config file without a restart (it is sent SIGHUP).

    A config that does not load is refused with its key path and the running one is kept
    (exit status 1). Requests in flight finish on the config they started with.

    \b
    Examples:
      llmproxy reload
      kill -HUP "$(cat ~/.local/state/llmproxy/llmproxy.pid)"   # the same
    """
    found = find_daemon(url, config, api_key)
    if found.answer is None or found.pid is None:
        fail(f"nothing answers at {found.url}; {START_HINT}", code=EXIT_NOT_RUNNING)
    hup = getattr(signal, "SIGHUP", None)
    if hup is None:
        fail("this platform has no SIGHUP; restart the daemon instead", code=1)
    before = _reload_number(found.answer)
    try:
        os.kill(found.pid, hup)
    except OSError as exc:
        fail(f"cannot signal the daemon at {found.url} (pid {found.pid}): {exc.strerror}", code=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = health(found.url, api_key=found.api_key)
        last = (answer or {}).get("config", {}).get("last_reload")
        if isinstance(last, dict) and _reload_number(answer) > before:
            if not last.get("ok"):
                fail(str(last.get("message")), code=1)
            restart = ", ".join(last.get("restart_required") or [])
            stderr().print(
                str(last.get("message"))
                + (f"; a restart is needed to change {restart}" if restart else "")
            )
            return
        time.sleep(0.1)
    fail(
        f"the daemon at {found.url} did not report a reload within {timeout:.0f}s; see its log",
        code=1,
    )


def _reload_number(answer: dict[str, Any] | None) -> int:
    config = (answer or {}).get("config")
    last = config.get("last_reload") if isinstance(config, dict) else None
    number = last.get("number") if isinstance(last, dict) else None
    return number if isinstance(number, int) else 0


def daemon_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str | None = URL_OPTION,
    config: Path | None = CONFIG_OPTION,
    api_key: str | None = API_KEY_OPTION,
) -> None:
    """Show whether the daemon runs and answers.

    Exit status 0 when it answers, 3 when nothing runs, 1 when a started daemon does not answer.

    \b
    Examples:
      llmproxy status
      llmproxy status --json
    """
    found = find_daemon(url, config, api_key)
    answer, managed = found.answer, found.managed
    report = {
        "running": answer is not None or managed is not None,
        "answering": answer is not None,
        "url": found.url,
        "pid": found.pid,
        "detached": managed is not None,
        "uptime_s": round(time.time() - managed.started) if managed else None,
        "log": managed.log if managed else None,
        "providers": answer.get("providers", []) if answer else [],
        "targets": answer.get("targets", []) if answer else [],
        "state": answer.get("state") if answer else None,
        **_workers(answer),
    }
    if as_json:
        print_json(report)
    else:
        _print_status(report)
    if answer is None:
        raise typer.Exit(1 if managed else EXIT_NOT_RUNNING)


def _workers(found: dict[str, Any] | None) -> dict[str, Any]:
    """Under `serve --workers N`: the supervisor and each worker, alive or not."""
    supervisor = found.get("pid") if found and found.get("worker") else None
    port = found.get("port") if found else None
    listed = read_workers(port) if isinstance(port, int) else None
    if listed is None or listed[0] != supervisor:
        return {}
    return {
        "supervisor": supervisor,
        "workers": [{"pid": pid, "alive": pid_alive(pid)} for pid in listed[1]],
    }


def _print_status(report: dict[str, Any]) -> None:
    out = stdout()
    if not report["running"]:
        out.print(f"not running (nothing answers at {report['url']})")
        return
    state = ("running", "green") if report["answering"] else ("not answering", "red")
    pid = f"  pid {report['pid']}" if report["pid"] else ""
    how = "" if report["detached"] else "  (in the foreground, not started by --detach)"
    out.print(styled(state, f"  {report['url']}{pid}{how}"))
    if report["uptime_s"] is not None:
        out.print(f"uptime     {report['uptime_s']} s")
    if report.get("workers"):
        pids = ", ".join(
            f"{w['pid']}" + ("" if w["alive"] else " (gone)") for w in report["workers"]
        )
        out.print(
            f"workers    {len(report['workers'])} (supervisor pid {report['supervisor']}): {pids}",
        )
    if report.get("state"):
        state = report["state"]
        shared = f"redis, {state.get('redis')}" if state.get("backend") == "redis" else "memory"
        out.print(f"state      {shared}")
    if report["providers"]:
        out.print(f"providers  {', '.join(report['providers'])}")
    unhealthy = [
        t
        for t in report["targets"]
        if t.get("state") != "closed" or (t.get("cooldown_left") or 0) > 0
    ]
    for target in unhealthy:
        cooling = float(target.get("cooldown_left") or 0)
        state_text = f"{target.get('state')}" + (f", cooling {cooling:.0f}s" if cooling else "")
        out.print(f"  {target.get('target')}: {state_text}  {target.get('reason') or ''}".rstrip())
    if report["log"]:
        out.print(f"log        {report['log']}")
