"""`llmproxy serve`: run the daemon in the foreground (systemd), in the background (--detach),
or in front of the built-in simulated providers (--simulate)."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import typer

from cli._config import load, state_dir
from cli._options import CONFIG_OPTION
from cli._output import fail, stderr
from proxy.config import Config
from proxy.errors import ConfigError
from proxy.logging_setup import Redactor, configure_logging
from proxy.model_catalog import load_catalog
from proxy.reload import config_file, install_reload
from proxy.security.auth import check_bind
from proxy.server import build_app
from proxy.serving import serve_until_signalled
from proxy.state import WORKER_ENV

# The daemon imports what serving needs: the simulators (--simulate), the daemon client
# (--detach, a busy port) and the workers' supervisor (--workers, which loads ctypes) are
# imported where they are used, so a daemon holds none of them.


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LOG_LEVEL_OPTION = typer.Option(LogLevel.INFO, "--log-level", help="How much to log.")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LOG_FORMAT_OPTION = typer.Option(
    LogFormat.TEXT,
    "--log-format",
    help="json: one JSON object per line (a request's line carries its whole record).",
)


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3456
WATCH_INTERVAL = 1.0  # seconds between looks at the config file's modification time


def serve_run(
    config: Path | None = CONFIG_OPTION,
    host: str | None = typer.Option(None, "--host", help="Address to bind (overrides config)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (overrides config)."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
    simulate: bool = typer.Option(
        False,
        "--simulate",
        help="Serve the built-in simulated "
        "reference deployment (offline, no keys, no config needed).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="With --simulate: the fault schedule's seed."
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        "-d",
        help="Run in the background; pid and "
        "log in the state dir. Manage with `llmproxy status` / `stop`.",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        min=1,
        max=64,
        help="Processes serving "
        "the port (SO_REUSEPORT); they share limits and health through "
        '[state] backend = "redis".',
    ),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Reload the config when the file (or the "
        ".env next to it) changes. `llmproxy reload` and SIGHUP always "
        "work.",
    ),
) -> None:
    """Run the proxy daemon (foreground by default, e.g. under systemd).

    \b
    Examples:
      llmproxy serve --config ~/.config/llmproxy/config.toml
      llmproxy serve --simulate            # offline demo: codex 429s, zai 500s, fallbacks
      llmproxy serve --detach && llmproxy status
      llmproxy serve --workers 4           # one port, four processes (Linux)
      llmproxy serve --watch               # edits to the config apply without a restart
      ANTHROPIC_BASE_URL=http://127.0.0.1:3456 claude
    """
    settings = None if simulate else load(config)
    bind_host = host or (settings.proxy.host if settings else DEFAULT_HOST)
    bind_port = port or (settings.proxy.port if settings else DEFAULT_PORT)
    if settings is not None:
        _check_bind(settings, bind_host)
    if workers > 1 and settings is None:
        fail("--workers serves a config file; --simulate runs one process")
    if detach:
        from cli._address import reachable_url
        from cli.daemon import start_detached

        args = [
            "--host",
            bind_host,
            "--port",
            str(bind_port),
            "--log-level",
            log_level.value,
            "--log-format",
            log_format.value,
        ]
        args += ["--workers", str(workers)] if workers > 1 else []
        args += ["--simulate"] if simulate else []
        args += ["--seed", str(seed)] if simulate and seed is not None else []
        args += ["--config", str(Path(settings.source).resolve())] if settings else []
        args += ["--watch"] if watch else []
        state = start_detached(args, reachable_url(bind_host, bind_port))
        stderr().print(
            f"llmproxy running in the background (pid {state.pid}) on {state.url}\n"
            f"log: {state.log}\nstop it with `llmproxy stop`",
        )
        return
    if settings is not None and workers > 1:
        args = [
            "--host",
            bind_host,
            "--port",
            str(bind_port),
            "--log-level",
            log_level.value,
            "--log-format",
            log_format.value,
            "--config",
            str(Path(settings.source).resolve()),
        ]
        args += ["--watch"] if watch else []
        from cli.workers import run_workers  # the supervisor's; a worker serves without it

        stderr().print(f"llmproxy: {workers} workers on http://{bind_host}:{bind_port}")
        raise typer.Exit(run_workers(workers, args, bind_port, shared=settings.state.shared))
    if settings is not None:
        _run(settings, bind_host, bind_port, log_level.value, log_format.value, watch=watch)
        return
    from proxy.simulate.deployment import (
        DEFAULT_SEED,
        reference_config,
        reference_providers,
        write_sign_ins,
    )
    from proxy.simulate.runner import SimulatorThread

    seed = DEFAULT_SEED if seed is None else seed
    # Latency makes the demo's streams visibly stream.
    sims = SimulatorThread(reference_providers(seed, chunk_delay=0.02, first_token_delay=0.2))
    providers = sims.start()
    try:
        with tempfile.TemporaryDirectory(prefix="llmproxy-sim-") as directory:
            sign_ins = write_sign_ins(providers, Path(directory))
            simulated = reference_config(
                providers, sign_ins, host=bind_host, port=bind_port, seed=seed
            )
            _check_bind(simulated, bind_host)
            _run(
                simulated,
                bind_host,
                bind_port,
                log_level.value,
                log_format.value,
                watch=watch,
                banner=lambda: _banner(bind_host, bind_port, seed),
            )
    finally:
        sims.stop()


def _check_bind(config: Config, host: str) -> None:
    try:
        check_bind(config, host)
    except ConfigError as exc:
        fail(f"config error: {exc}")


def _run(
    config: Config,
    host: str,
    port: int,
    log_level: str,
    log_format: str,
    *,
    watch: bool = False,
    banner: Callable[[], None] | None = None,
) -> None:
    configure_logging(log_level, Redactor.from_config(config), log_format)
    config = config.with_catalog(load_catalog(config))  # `providers refresh` fills the cache
    app = build_app(config, state_dir=state_dir())  # the request journal lives there
    path = config_file(config)
    if watch and path is None:
        stderr().print("--watch: nothing to watch, this daemon has no config file")
    install_reload(app, path, watch_interval=WATCH_INTERVAL if watch else None)

    def listening() -> None:  # called once the socket is bound, not before
        if banner is not None:
            banner()
        else:
            stderr().print(f"llmproxy listening on http://{host}:{port}")

    try:
        with asyncio.Runner(loop_factory=_event_loop) as runner:
            runner.run(
                serve_until_signalled(
                    app,
                    host,
                    port,
                    on_listening=listening,
                    shutdown_timeout=30,
                    # one of `--workers N`: the port is shared
                    reuse_port=bool(os.environ.get(WORKER_ENV)),
                )
            )
    except KeyboardInterrupt:  # only where signals cannot be handled in the loop (Windows)
        pass
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        fail(bind_problem(exc.errno, host, port), code=1)


def bind_problem(code: int, host: str, port: int) -> str:
    """One line: what, who holds the port if we can tell, what to do."""
    if code == errno.EACCES:
        return (
            f"not allowed to listen on port {port} (ports below 1024 need privileges); "
            "choose another with --port"
        )
    if code == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; fix [proxy] host or pass --host"
    from cli._address import health, reachable_url

    answer = health(reachable_url(host, port))
    if answer is not None:
        holder = (
            f"another llmproxy (pid {answer.get('pid', '?')}) already listens there; "
            "`llmproxy stop` stops it"
        )
    else:
        holder = f"another program listens there (`ss -ltnp 'sport = :{port}'` shows which)"
    return f"port {port} on {host} is in use: {holder}; or choose another port with --port"


def _banner(host: str, port: int, seed: int) -> None:
    url = f"http://{host}:{port}"
    # `chat` finds a daemon on the default address by itself
    chat_url = "" if (host, port) == (DEFAULT_HOST, DEFAULT_PORT) else f" --url {url}"
    stderr().print(
        f"llmproxy (simulated reference deployment, seed {seed}) listening on {url}\n"
        "  openai-codex  429 usage_limit_reached on every request\n"
        "  zai           GLM-5, reasoning; intermittent 500s, before and in the middle of streams\n"
        "  cerebras      healthy          minimax  Anthropic format, healthy\n"
        "  routes: default zai|cerebras · think codex|zai|minimax · background codex · "
        "thinking/cheapest/fastest\n"
        "try:\n"
        f'  llmproxy chat{chat_url} "hello"          llmproxy e2e --simulate\n'
        f"  ANTHROPIC_BASE_URL={url} claude\n"
        f"  OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY=unused <your OpenAI client>",
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows; the default loop is fine there
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
