"""Where the config file is: `--config`, `$LLMPROXY_CONFIG`, the user config dir, /etc.

Apart from the rest of the package, so that finding the file costs nothing of building it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from proxy.errors import ConfigError

SYSTEM_CONFIG_PATH = Path("/etc/llmproxy/config.toml")


def find_config_path(
    explicit: Path | None,
    env: Mapping[str, str],
    *,
    user_dir: Path | None = None,
    system_path: Path = SYSTEM_CONFIG_PATH,
) -> Path | None:
    """`--config`, then `$LLMPROXY_CONFIG`, then the user config dir, then /etc.

    A path the user named (flag or variable) must exist; the two default places are optional.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("--config", f"{explicit}: no such config file")
        return explicit
    if named := env.get("LLMPROXY_CONFIG"):
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError("LLMPROXY_CONFIG", f"{path}: no such config file")
        return path
    if user_dir is None:
        import platformdirs  # only when no path was named

        user_dir = platformdirs.user_config_path("llmproxy")
    user = user_dir / "config.toml"
    for candidate in (user, system_path):
        if candidate.is_file():
            return candidate
    return None
