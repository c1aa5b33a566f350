"""$VAR expansion in the parsed TOML tree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from proxy.errors import ConfigError

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_string(value: str, env: Mapping[str, str], key: str) -> str:
    """Expand `$NAME`, `${NAME}` and `$$` once (expanded text is not re-expanded)."""
    if "$" not in value:
        return value
    out: list[str] = []
    pos = 0
    while (at := value.find("$", pos)) >= 0:
        m = _VAR.match(value, at)
        if m is None:
            raise ConfigError(
                key, f"stray '$' at offset {at}: write $NAME, ${{NAME}}, or $$ for a literal '$'"
            )
        name = m.group(2) or m.group(3)
        if name is None:
            replacement = "$"
        elif name in env:
            replacement = env[name]
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
    return [m.group(2) or m.group(3) for m in _VAR.finditer(value) if not m.group(1)]


def expand_env(data: Any, env: Mapping[str, str], key: str = "") -> Any:
    """A copy of a parsed TOML tree with every string value expanded (keys are not)."""
    if isinstance(data, str):
        return expand_string(data, env, key)
    if isinstance(data, dict):
        return {k: expand_env(v, env, f"{key}.{k}" if key else k) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, env, f"{key}[{i}]") for i, v in enumerate(data)]
    return data
