"""Typer options that several commands share."""

from __future__ import annotations

import typer

CONFIG_OPTION = typer.Option(
    None,
    "--config",
    "-c",
    help="Config file (default: $LLMPROXY_CONFIG, the user config dir, "
    "then /etc/llmproxy/config.toml).",
    dir_okay=False,
)
