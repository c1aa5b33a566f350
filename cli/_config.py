"""The one factory for what every command shares: finding and loading the config."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import typer

from cli._output import fail
from proxy.config import Config, find_config_path, load_config
from proxy.errors import ConfigError
from proxy.observe.settings import JOURNAL_FILE

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="Config file (default: $LLMPROXY_CONFIG, the user config dir, "
    "then /etc/llmproxy/config.toml).", dir_okay=False,
)


def load(explicit: Path | None) -> Config:
    """Load the config or exit with a message that names the file and the key."""
    env = dict(os.environ)
    try:
        path = find_config_path(explicit, env)
        if path is None:
            fail(
                "no config file found. Create one with `llmproxy init`, pass --config, set "
                "$LLMPROXY_CONFIG, or try everything offline with `llmproxy serve --simulate`."
            )
        return load_config(path, env)
    except ConfigError as exc:
        fail(f"config error: {exc}")


def load_optional(explicit: Path | None) -> Config | None:
    """The config when one is found; None when there is none (a named file must exist)."""
    env = dict(os.environ)
    try:
        path = find_config_path(explicit, env)
        return None if path is None else load_config(path, env)
    except ConfigError as exc:
        fail(f"config error: {exc}")


def state_dir() -> Path:
    """Pid, log and history files: `$LLMPROXY_STATE_DIR`, else the platform's user state dir."""
    named = os.environ.get("LLMPROXY_STATE_DIR")
    return Path(named).expanduser() if named else platformdirs.user_state_path("llmproxy")


def journal_file(explicit: Path | None) -> Path:
    """The daemon's request journal: `[journal] path` of the config when one is found, else
    `requests.db` in the state dir (where `llmproxy serve` writes it)."""
    config = load_optional(explicit)
    if config is not None and config.journal.path:
        return Path(config.journal.path).expanduser()
    return state_dir() / JOURNAL_FILE
