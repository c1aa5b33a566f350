"""The one factory for what every command shares: finding and loading the config.

Commands that only talk to a running daemon (`chat` through it, `status`, `stop`, `reload`,
`route test`, `providers status`) load it with `secrets=False`: an unset `$VAR` becomes ""
instead of an error, because the daemon has its own environment (a systemd `EnvironmentFile`)
and this shell need not hold any provider key. Commands that call providers themselves load it
with the secrets, and say why when one is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cli._output import fail

if TYPE_CHECKING:
    from proxy.config import Config
    from proxy.config.address import DaemonAddress

NO_CONFIG = (
    "no config file found. Create one with `llmproxy init`, pass --config, set "
    "$LLMPROXY_CONFIG, or try everything offline with `llmproxy serve --simulate`."
)


def load(explicit: Path | None, *, secrets: bool = True, why: str = "") -> Config:
    """Load the config or exit with a message that names the file and the key. `why` says
    what needs the secrets, for the message about a missing one."""
    config = load_optional(explicit, secrets=secrets, why=why)
    if config is None:
        fail(NO_CONFIG)
    return config


def load_optional(explicit: Path | None, *, secrets: bool = True, why: str = "") -> Config | None:
    """The config when one is found; None when there is none (a named file must exist)."""
    config, _ = load_reporting_unset(explicit, secrets=secrets, why=why)
    return config


def load_reporting_unset(
    explicit: Path | None, *, secrets: bool = True, why: str = ""
) -> tuple[Config | None, dict[str, str]]:
    """Also the `key path -> variable` of every unset variable (secrets=False only)."""
    from proxy.config import find_config_path, load_config  # `--url` commands never get here
    from proxy.errors import ConfigError

    env = dict(os.environ)
    unset: dict[str, str] = {}
    try:
        path = find_config_path(explicit, env)
        if path is None:
            return None, unset
        return load_config(path, env, unset=None if secrets else unset), unset
    except ConfigError as exc:
        because = f" ({why})" if why and "is not set" in str(exc) else ""
        fail(f"config error: {exc}{because}")


def load_address(explicit: Path | None) -> DaemonAddress | None:
    """The configured daemon's address and client keys, without building the whole config
    (`proxy.config.address`); None when there is no config file. A file that quick read does
    not take is loaded whole, so that its error is the one every command gives."""
    from proxy.config.address import DaemonAddress, read_address
    from proxy.config.locate import find_config_path
    from proxy.errors import ConfigError

    try:
        path = find_config_path(explicit, os.environ)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    if path is None:
        return None
    address = read_address(path, os.environ)
    return address if address is not None else DaemonAddress.of(load(path, secrets=False))


def state_dir() -> Path:
    """Pid, log and history files: `$LLMPROXY_STATE_DIR`, else the platform's user state dir."""
    if named := os.environ.get("LLMPROXY_STATE_DIR"):
        return Path(named).expanduser()
    import platformdirs  # only when no directory was named

    return platformdirs.user_state_path("llmproxy")


def journal_file(explicit: Path | None) -> Path:
    """The daemon's request journal: `[journal] path` of the config when one is found, else
    `requests.db` in the state dir (where `llmproxy serve` writes it)."""
    from proxy.observe.settings import JOURNAL_FILE

    config = load_optional(explicit, secrets=False)
    if config is not None and config.journal.path:
        return Path(config.journal.path).expanduser()
    return state_dir() / JOURNAL_FILE
