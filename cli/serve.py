"""`llmproxy serve`: the Typer command (`cli._serve` does the work).

The console script reads plain `serve` arguments without Typer (`cli._serve_argv`); this
command reads the rest, `--help` and every usage error included.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli._options import CONFIG_OPTION
from cli._serve import LogFormat, LogLevel, ServeArgs, serve

LOG_LEVEL_OPTION = typer.Option(LogLevel.INFO, "--log-level", help="How much to log.")
LOG_FORMAT_OPTION = typer.Option(
    LogFormat.TEXT,
    "--log-format",
    help="json: one JSON object per line (a request's line carries its whole record).",
)


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
    serve(
        ServeArgs(
            config=config,
            host=host,
            port=port,
            log_level=log_level.value,
            log_format=log_format.value,
            simulate=simulate,
            seed=seed,
            detach=detach,
            workers=workers,
            watch=watch,
        )
    )
