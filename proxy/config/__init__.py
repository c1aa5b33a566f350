"""The config file: TOML in, one validated frozen `Config` out.

The shape is the reference proxy's (`[proxy]`, `[router]`, `[[providers]]`), so its users can
bring their file, but nothing is silently ignored: every problem raises `ConfigError` whose `key`
is the dotted path of the offending value (`router.think[2]`, `providers[1].api_key`).

`$NAME`, `${NAME}` and `${NAME:-default}` expand in every string value; `$$` is a literal
`$`; a `.env` file next to the config supplies variables the environment does not set.
Globs (`*`, `?`, `[...]`, `{a,b}`) are compiled once here so that routing never compiles
anything per request.

Layout: `model` (the frozen values), `targets` (globs, `provider,model`, chains), `env` ($VAR
expansion), `reader` (`TableReader`: typed reads that name the key), `sections` (`[proxy]`,
`[[providers]]`), `router` (`[router]`), `load` (entry points). Import from `proxy.config`; modules
that `proxy.config` itself imports (e.g. `proxy.security.settings`) import the submodule instead.

Each name is imported from its submodule on first use: a command that only needs the daemon's
address (`locate`, `address`) or `$VAR` expansion (`env`) does not build the classes of the
whole config, which costs more than the interpreter's own start-up
(tests/bench/bench_startup.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.config.env import Unset, expand_env, expand_string, read_dotenv, with_dotenv
    from proxy.config.load import load_config, parse_config
    from proxy.config.locate import SYSTEM_CONFIG_PATH, find_config_path
    from proxy.config.model import (
        CAPABILITY_CACHE_SIZE,
        FORMAT_BY_PROVIDER_NAME,
        NO_ROUTE_OPTIONS,
        PROVIDER_FORMATS,
        Config,
        ModelMapping,
        ProviderConfig,
        ProxySettings,
        RouteOptions,
        RouterConfig,
        Timeouts,
        default_format,
    )
    from proxy.config.reader import TableReader
    from proxy.config.sections import CODEX_BASE_URL, TIMEOUT_KEYS
    from proxy.config.targets import GLOB_CHARS, compile_glob, parse_chain, parse_target

HOMES = {
    "CAPABILITY_CACHE_SIZE": "model",
    "CODEX_BASE_URL": "sections",
    "Config": "model",
    "FORMAT_BY_PROVIDER_NAME": "model",
    "GLOB_CHARS": "targets",
    "ModelMapping": "model",
    "NO_ROUTE_OPTIONS": "model",
    "PROVIDER_FORMATS": "model",
    "ProviderConfig": "model",
    "ProxySettings": "model",
    "RouteOptions": "model",
    "RouterConfig": "model",
    "SYSTEM_CONFIG_PATH": "locate",
    "TIMEOUT_KEYS": "sections",
    "TableReader": "reader",
    "Timeouts": "model",
    "Unset": "env",
    "compile_glob": "targets",
    "default_format": "model",
    "expand_env": "env",
    "expand_string": "env",
    "find_config_path": "locate",
    "load_config": "load",
    "parse_chain": "targets",
    "parse_config": "load",
    "parse_target": "targets",
    "read_dotenv": "env",
    "with_dotenv": "env",
}


def __getattr__(name: str) -> Any:
    home = HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'proxy.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"proxy.config.{home}"), name)
    globals()[name] = value  # once: the next lookup finds it without this hook
    return value


__all__ = [
    "CAPABILITY_CACHE_SIZE",
    "CODEX_BASE_URL",
    "FORMAT_BY_PROVIDER_NAME",
    "GLOB_CHARS",
    "NO_ROUTE_OPTIONS",
    "PROVIDER_FORMATS",
    "SYSTEM_CONFIG_PATH",
    "TIMEOUT_KEYS",
    "Config",
    "ModelMapping",
    "ProviderConfig",
    "ProxySettings",
    "RouteOptions",
    "RouterConfig",
    "TableReader",
    "Timeouts",
    "Unset",
    "compile_glob",
    "default_format",
    "expand_env",
    "expand_string",
    "find_config_path",
    "load_config",
    "parse_chain",
    "parse_config",
    "parse_target",
    "read_dotenv",
    "with_dotenv",
]
