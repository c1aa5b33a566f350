"""`llmproxy serve`: run the daemon in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from aiohttp import web

from cli._config import CONFIG_OPTION, load
from cli._output import stderr
from proxy.server import build_app


def serve_run(
    config: Path | None = CONFIG_OPTION,
    host: str | None = typer.Option(None, "--host", help="Address to bind (overrides config)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (overrides config)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the proxy daemon in the foreground.

    Examples:
      llmproxy serve --config ~/.config/llmproxy/config.toml
      llmproxy serve --port 4000
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load(config)
    bind_host = host or settings.proxy.host
    bind_port = port or settings.proxy.port
    stderr().print(f"llmproxy listening on http://{bind_host}:{bind_port}")
    _use_uvloop()
    web.run_app(build_app(settings), host=bind_host, port=bind_port, print=None,
                handler_cancellation=True, access_log=None, shutdown_timeout=30)


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # not on Windows; the default loop is fine there
        return
    uvloop.install()
