"""Helpers for the CLI tests: simulated providers and the real daemon in a background thread
(Typer's runner is synchronous and every command runs its own event loop), and a runner whose
config, state and history paths point into a temporary directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from support import config_text
from typer.testing import CliRunner, Result

from cli.main import app
from proxy.config import parse_config
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.simulate.deployment import LoopThread, running_daemon


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def default_address_unused(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI's default daemon address (127.0.0.1:3456) at a free port for one test, so
    that a daemon the developer runs there cannot answer it. Returns that address."""
    url = f"http://127.0.0.1:{free_port()}"
    for module in ("cli._address", "cli._client", "cli.daemon"):
        monkeypatch.setattr(f"{module}.DEFAULT_DAEMON_URL", url)
    return url


@dataclass(frozen=True)
class Running:
    url: str  # where the daemon listens (or would: with daemon=False nothing does)
    port: int
    config: str
    sims: Mapping[str, SimulatedProvider]


@contextlib.asynccontextmanager
async def _serve(
    sims: Sequence[SimulatedProvider],
    routes: Mapping[str, str],
    mappings: Sequence[tuple[str, str]],
    port: int,
    daemon: bool,
) -> AsyncIterator[Running]:
    async with run_simulated(sims) as running:
        text = config_text(running, routes, mappings=mappings, proxy=f"port = {port}")
        if not daemon:
            yield Running(f"http://127.0.0.1:{port}", port, text, running)
            return
        async with running_daemon(parse_config(text, env={}), "127.0.0.1", port) as url:
            yield Running(url, port, text, running)


@contextlib.contextmanager
def serving(
    sims: Sequence[SimulatedProvider],
    routes: Mapping[str, str],
    *,
    mappings: Sequence[tuple[str, str]] = (),
    daemon: bool = True,
) -> Iterator[Running]:
    """Simulators, plus the daemon in front of them on the config's port unless `daemon` is
    False (then the config names a port where nothing listens)."""
    port = free_port()
    with LoopThread(lambda: _serve(sims, routes, mappings, port, daemon)) as running:
        yield running


class Cli:
    """Invokes `llmproxy` in-process with an environment that cannot see the user's files."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "LLMPROXY_CONFIG": None,
            "LLMPROXY_API_KEY": None,
            "LLMPROXY_STATE_DIR": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state-home"),
            "COLUMNS": "200",
        }

    def config(self, text: str) -> Path:
        path = self.home / "config.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, env=self.env)


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
    env.update(
        {
            "LLMPROXY_STATE_DIR": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


Args = TypeVar("Args")


class ClickCommand(Protocol):
    def make_context(self, info_name: str | None, args: list[str]) -> Any: ...


def typer_reads(
    command: ClickCommand, name: str, argv: Sequence[str], make: Callable[..., Args]
) -> Args | None:
    """What the Typer command makes of `argv` (as the keyword arguments `make` takes), or None
    when it refuses it or shows help: what a quick argument reader must agree with."""
    try:
        ctx = command.make_context(name, list(argv))
    except Exception:  # click's usage errors, and its Exit for --help
        return None
    params: dict[str, Any] = dict(ctx.params)
    if params["config"] is not None:  # Typer makes a `Path` of it for the function
        params["config"] = Path(params["config"])
    return make(**params)


def imported_by_serving(
    home: Path, config_text: str, env: Mapping[str, str] | None = None
) -> list[str]:
    """Every module `llmproxy serve` imported by the time it listens, in order (`python -X
    importtime` lists each); the daemon is stopped then."""
    config = home / "config.toml"
    config.write_text(config_text)
    serve = ("--config", str(config), "--port", str(free_port()), "--log-level", "warning")
    imported: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "cli", "serve", *serve],
        cwd=Path(__file__).resolve().parent.parent,
        env=dict(env) if env is not None else subprocess_env(home),
        stderr=subprocess.PIPE,
        text=True,
    ) as daemon:
        assert daemon.stderr is not None
        try:
            for line in daemon.stderr:
                if line.startswith("import time:"):
                    imported.append(line.rsplit("|", 1)[1].strip())
                elif "listening on" in line:
                    break
            else:
                raise AssertionError(f"the daemon ended before it listened (exit {daemon.wait()})")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
    assert "proxy.server" in imported
    return imported
