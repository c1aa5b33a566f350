"""What `llmproxy serve` does: run the daemon in the foreground (systemd), in the background
(--detach), or in front of the built-in simulated providers (--simulate).

Its arguments come from the Typer command (`cli.serve`) or, on the console script's quick path,
from `cli._serve_argv`; both build one `ServeArgs`. Nothing here imports Typer, click or rich:
a daemon holds every module it imported for as long as it runs.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from cli._config import load, state_dir
from cli._output import fail, stderr
from proxy.frozen import frozen

if TYPE_CHECKING:
    from proxy.config import Config

# The daemon imports what serving needs: the simulators (--simulate), the daemon client
# (--detach, a busy port) and the workers' supervisor (--workers) are imported where they are
# used, so a daemon holds none of them. aiohttp and the daemon's code are imported once `serve`
# has chosen how aiohttp's dependencies load (`_lean_imports`).


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3456
WATCH_INTERVAL = 1.0  # seconds between looks at the config file's modification time


@frozen
class ServeArgs:
    """`serve`'s options, as the Typer command (`cli.serve`) documents them."""

    config: Path | None = None
    host: str | None = None
    port: int | None = None
    log_level: str = LogLevel.INFO.value
    log_format: str = LogFormat.TEXT.value
    simulate: bool = False
    seed: int | None = None
    detach: bool = False
    workers: int = 1
    watch: bool = False


def serve(args: ServeArgs) -> None:
    """Serve until SIGINT or SIGTERM; or start the daemon in the background (--detach), or
    supervise its workers (--workers)."""
    _lean_imports()
    settings = None if args.simulate else load(args.config)
    host = args.host or (settings.proxy.host if settings else DEFAULT_HOST)
    port = args.port or (settings.proxy.port if settings else DEFAULT_PORT)
    if settings is not None:
        _check_bind(settings, host)
    if args.workers > 1 and settings is None:
        fail("--workers serves a config file; --simulate runs one process")
    if args.detach:
        _detach(args, settings, host, port)
    elif settings is None:
        _simulate(args, host, port)
    elif args.workers > 1:
        from cli.workers import run_workers  # the supervisor's; a worker serves without it

        stderr().print(f"llmproxy: {args.workers} workers on http://{host}:{port}")
        serve_args = _child_args(args, settings, host, port)
        raise SystemExit(run_workers(args.workers, serve_args, port, shared=settings.state.shared))
    else:
        _run(settings, host, port, args.log_level, args.log_format, watch=args.watch)


def _child_args(args: ServeArgs, settings: Config | None, host: str, port: int) -> list[str]:
    """`serve`'s arguments for a process that serves (a worker, the detached daemon)."""
    child = ["--host", host, "--port", str(port)]
    child += ["--log-level", args.log_level, "--log-format", args.log_format]
    child += ["--config", str(Path(settings.source).resolve())] if settings else []
    return child + (["--watch"] if args.watch else [])


def _detach(args: ServeArgs, settings: Config | None, host: str, port: int) -> None:
    from cli._address import reachable_url
    from cli.daemon import start_detached

    child = _child_args(args, settings, host, port)
    child += ["--workers", str(args.workers)] if args.workers > 1 else []
    child += ["--simulate"] if args.simulate else []
    child += ["--seed", str(args.seed)] if args.simulate and args.seed is not None else []
    state = start_detached(child, reachable_url(host, port))
    stderr().print(
        f"llmproxy running in the background (pid {state.pid}) on {state.url}\n"
        f"log: {state.log}\nstop it with `llmproxy stop`",
    )


def _simulate(args: ServeArgs, host: str, port: int) -> None:
    import tempfile

    from proxy.simulate.deployment import (
        DEFAULT_SEED,
        reference_config,
        reference_providers,
        write_sign_ins,
    )
    from proxy.simulate.runner import SimulatorThread

    seed = DEFAULT_SEED if args.seed is None else args.seed
    # Latency makes the demo's streams visibly stream.
    sims = SimulatorThread(reference_providers(seed, chunk_delay=0.02, first_token_delay=0.2))
    providers = sims.start()
    try:
        with tempfile.TemporaryDirectory(prefix="llmproxy-sim-") as directory:
            sign_ins = write_sign_ins(providers, Path(directory))
            simulated = reference_config(providers, sign_ins, host=host, port=port, seed=seed)
            _check_bind(simulated, host)
            _run(
                simulated,
                host,
                port,
                args.log_level,
                args.log_format,
                watch=args.watch,
                banner=lambda: _banner(host, port, seed),
            )
    finally:
        sims.stop()


def _lean_imports() -> None:
    """aiohttp keeps its signals and middlewares in frozenlist's `FrozenList`, whose compiled
    extension is C++: loading it maps libstdc++, about 1.6 MB of RSS a daemon would hold for a
    few lists read a few times a request. frozenlist's own switch loads it as pure Python
    instead (unless the environment says otherwise, or aiohttp is loaded already: in-process
    tests). Workers and a detached daemon inherit it. Where aiohttp is loaded already (a
    program or a test serving in-process) the switch would change nothing here and would leak
    into every process it starts, so it is left alone; so is aiohttp's client half
    (`_aiohttp_without_its_client`)."""
    if "aiohttp" not in sys.modules:
        os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")
        _aiohttp_without_its_client()


def _aiohttp_without_its_client() -> None:
    """Importing `aiohttp.web` runs `aiohttp/__init__.py`, which imports aiohttp's whole
    client (sessions, connectors, cookies, websockets, tracing): 4 MB a daemon would hold, whose
    upstream client is llmproxy's own (`proxy.security.http1`). Here the package is made
    without running it, and it runs the first time something asks the package for a name it
    defines (`aiohttp.ClientSession`), once, under a lock (another thread asking meanwhile
    waits for it); a name that is a submodule is that module, imported alone (`from aiohttp
    import web`, `aiohttp.resolver`). `aiohttp.http` reads the package's `__version__`, taken
    from the file's first assignment. Where the package is not plain source files in folders
    (compiled only, in a zip) or the file has no such line, nothing is changed: aiohttp is
    imported as Python would."""
    spec = importlib.util.find_spec("aiohttp")
    if spec is None or spec.origin is None or spec.loader is None:
        return
    if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
        return
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
        names = [
            name for folder in spec.submodule_search_locations or [] for name in os.listdir(folder)
        ]
    except (OSError, UnicodeDecodeError):
        return
    version = re.search(r'^__version__ = "([^"]+)"$', source, re.M)
    if version is None:
        return
    package = importlib.util.module_from_spec(spec)
    submodules = {name.partition(".")[0] for name in names if not name.startswith("__")}
    loader = spec.loader
    lock = threading.RLock()
    running: list[bool] = []  # the thread holding the lock is running the file

    def whole(name: str) -> object:
        if name in submodules:
            try:  # `__import__`, not `importlib`, so that `python -X importtime` lists it
                __import__(f"aiohttp.{name}")
                return sys.modules[f"aiohttp.{name}"]
            except ModuleNotFoundError as exc:
                if exc.name != f"aiohttp.{name}":
                    raise
                raise AttributeError(name) from None
        with lock:
            if running:  # asked by the file itself while it runs: a half-made module's answer
                raise AttributeError(name)
            if vars(package).get("__getattr__") is whole:
                running.append(True)
                try:
                    loader.exec_module(package)
                finally:
                    running.clear()
                # aiohttp's own `__getattr__`, if it defines one, replaced this one
                if vars(package).get("__getattr__") is whole:
                    del vars(package)["__getattr__"]
        return getattr(package, name)

    vars(package).update(__version__=version.group(1), __getattr__=whole)
    sys.modules["aiohttp"] = package


def _check_bind(config: Config, host: str) -> None:
    from proxy.errors import ConfigError
    from proxy.security.auth import check_bind

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
    from proxy.logging_setup import Redactor, configure_logging
    from proxy.model_catalog import load_catalog
    from proxy.reload import config_file, install_reload
    from proxy.server import build_app
    from proxy.serving import serve_until_signalled
    from proxy.state import WORKER_ENV

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
