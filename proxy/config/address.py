"""Where the configured daemon listens and the client keys it takes, read from `[proxy]` alone.

For the commands that only talk to a running daemon (`chat` through it, `status`, `stop`,
`reload`, the launchers): building the whole `Config` costs them several times the
interpreter's own start-up (tests/bench/bench_startup.py), and a daemon has its own validated
config. The values mean what `[proxy]` means in the whole config, and anything this reader
does not take as plainly valid (a wrong type, bad TOML, a malformed `.env`) gives None, so the
caller loads the whole config and reports its error, with the key path, from there.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.config.env import expand_env, with_dotenv
from proxy.errors import ConfigError
from proxy.frozen import frozen

if TYPE_CHECKING:
    from proxy.config.model import Config

KEYS = ("host", "port", "api_key", "api_keys")


@frozen
class DaemonAddress:
    host: str
    port: int
    api_keys: tuple[str, ...]  # an unset `$VAR` is left out: this shell need not hold it
    source: Path

    @property
    def api_key(self) -> str | None:
        return self.api_keys[0] if self.api_keys else None

    @classmethod
    def of(cls, config: Config) -> DaemonAddress:
        keys = tuple(k for k in config.proxy.api_keys if k)
        return cls(config.proxy.host, config.proxy.port, keys, Path(config.source))


def read_address(path: Path, env: Mapping[str, str]) -> DaemonAddress | None:
    """`[proxy]` host, port and client keys of the config at `path`, `$VAR`s expanded from
    `env` over the `.env` beside it (unset ones as ""); None when anything is not plainly valid."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        section = raw.get("proxy", {})
        if not isinstance(section, dict):
            return None
        values = expand_env(
            {k: section[k] for k in KEYS if k in section}, with_dotenv(path, env), unset={}
        )
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ConfigError):
        return None
    host, port = values.get("host", "127.0.0.1"), values.get("port", 3456)
    listed = values.get("api_keys", [])
    if not (isinstance(host, str) and host and type(port) is int and 1 <= port <= 65535):
        return None
    if not isinstance(listed, list):
        return None
    keys = [values["api_key"], *listed] if "api_key" in values else listed
    if not all(isinstance(k, str) for k in keys):
        return None
    return DaemonAddress(host, port, tuple(dict.fromkeys(k for k in keys if k)), path)
