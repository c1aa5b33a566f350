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
"""

from __future__ import annotations

from proxy.config.env import Unset, expand_env, expand_string, read_dotenv, with_dotenv
from proxy.config.load import SYSTEM_CONFIG_PATH, find_config_path, load_config, parse_config
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

# the names before the split into a package, for importers written against them

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
