"""$VAR expansion in the parsed TOML tree, and the `.env` file next to the config.

`$NAME`, `${NAME}`, `${NAME:-default}` (the default when NAME is unset or empty, as in sh) and
`$$` (a literal `$`). An unset variable without a default is an error naming the key, unless the
caller collects unset variables instead (`unset=`): commands that only talk to a running daemon
read the config for its address and routes, never for the providers' secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
DOTENV_NAME = ".env"

Unset = MutableMapping[str, str]
"""Collects `key path -> variable name` for variables that were not set."""


def expand_string(
    value: str, env: Mapping[str, str], key: str, *, unset: Unset | None = None
) -> str:
    """Expand once (expanded text is not re-expanded). With `unset`, a missing variable
    becomes "" and is recorded there instead of raising."""
    if "$" not in value:
        return value
    out: list[str] = []
    pos = 0
    while (at := value.find("$", pos)) >= 0:
        m = _VAR.match(value, at)
        if m is None:
            raise ConfigError(
                key,
                f"stray '$' at offset {at}: write $NAME, ${{NAME}}, ${{NAME:-default}}, "
                "or $$ for a literal '$'",
            )
        name = m.group(2) or m.group(4)
        default = m.group(3)
        if name is None:
            replacement = "$"
        elif env.get(name) or (name in env and default is None):
            replacement = env[name]
        elif default is not None:
            replacement = default
        elif unset is not None:
            unset[key] = name
            replacement = ""
        else:
            raise ConfigError(key, f"environment variable {name} is not set")
        out.append(value[pos:at])
        out.append(replacement)
        pos = m.end()
    out.append(value[pos:])
    return "".join(out)


def references(value: str) -> list[str]:
    """The variable names `value` refers to (`$$` is a literal, not a reference)."""
    if "$" not in value:
        return []
    return [m.group(2) or m.group(4) for m in _VAR.finditer(value) if not m.group(1)]


def expand_env(
    data: Any, env: Mapping[str, str], key: str = "", *, unset: Unset | None = None
) -> Any:
    """A copy of a parsed TOML tree with every string value expanded (keys are not)."""
    if isinstance(data, str):
        return expand_string(data, env, key, unset=unset)
    if isinstance(data, dict):
        return {
            k: expand_env(v, env, f"{key}.{k}" if key else k, unset=unset) for k, v in data.items()
        }
    if isinstance(data, list):
        return [expand_env(v, env, f"{key}[{i}]", unset=unset) for i, v in enumerate(data)]
    return data


def read_dotenv(path: Path) -> dict[str, str]:
    """`NAME=value` lines (`export ` allowed, `#` comments, values optionally in single or
    double quotes). A missing file is empty; a malformed line is an error naming its number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"{path}: cannot read: {exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if m is None:
            raise ConfigError("", f"{path}, line {number}: expected NAME=value")
        values[m.group(1)] = _dotenv_value(m.group(2))
    return values


def _dotenv_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return inner.replace('\\"', '"').replace("\\n", "\n") if raw[0] == '"' else inner
    return raw.split(" #", 1)[0].rstrip()  # an unquoted value ends at a comment


def with_dotenv(config_path: Path, env: Mapping[str, str]) -> Mapping[str, str]:
    """`env` over the `.env` file next to the config: the environment always wins."""
    values = read_dotenv(config_path.parent / DOTENV_NAME)
    return {**values, **env} if values else env
