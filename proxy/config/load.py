"""Entry points: find the file, read it, expand it, build the `Config`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.config.env import Unset, expand_env, with_dotenv
from proxy.config.model import Config, ProviderConfig
from proxy.config.reader import TableReader, type_name
from proxy.config.router import parse_router
from proxy.config.sections import PROVIDER_KEYS, parse_affinity, parse_provider, parse_proxy
from proxy.errors import ConfigError
from proxy.observe.settings import parse_journal, parse_metrics
from proxy.security.settings import SecuritySettings, parse_management, parse_security
from proxy.security.ssrf import url_refusal
from proxy.state.settings import parse_state

_TOP_KEYS = (
    "proxy",
    "router",
    "providers",
    "security",
    "management",
    "state",
    "affinity",
    "journal",
    "metrics",
    "oauth",
    "webhooks",
)
_RAW_SECTIONS = ("oauth", "webhooks")


def _build(data: dict[str, Any], source: str) -> Config:
    top = TableReader(data, "", _TOP_KEYS)
    proxy = parse_proxy(top)
    security = parse_security(top)
    management = parse_management(top)
    providers: dict[str, ProviderConfig] = {}
    seen: dict[str, str] = {}
    compat = ("transformers",)
    for t in top.tables("providers", PROVIDER_KEYS, compat=compat):
        t.strings("transformers", None)
        provider = parse_provider(t, proxy.timeouts)
        _check_destination(t, provider, security)
        if provider.name.lower() in seen:
            first = seen[provider.name.lower()]
            raise ConfigError(t.key("name"), f"duplicate provider name '{provider.name}' ({first})")
        seen[provider.name.lower()] = t.key("name")
        providers[provider.name] = provider
    if not providers:
        raise ConfigError("providers", "at least one [[providers]] entry is required")
    source_path = Path(source)
    router = parse_router(top, providers, source_path.parent if source_path.is_file() else None)
    extra: dict[str, Mapping[str, Any]] = {}
    for name in _RAW_SECTIONS:
        if name in data:
            if not isinstance(data[name], dict):
                raise ConfigError(name, f"expected table, got {type_name(data[name])}")
            extra[name] = MappingProxyType(data[name])
    return Config(
        proxy,
        router,
        tuple(providers.values()),
        source,
        MappingProxyType(extra),
        security=security,
        management=management,
        state=parse_state(top),
        affinity=parse_affinity(top),
        journal=parse_journal(top),
        metrics=parse_metrics(top),
    )


def _check_destination(
    t: TableReader, provider: ProviderConfig, security: SecuritySettings
) -> None:
    """SSRF rules on the URL as written; its host's addresses are checked again at connect."""
    local = provider.allow_private_network
    problem = url_refusal(
        provider.api_base_url,
        allow_loopback=local or security.ssrf.allow_localhost,
        allow_private=local or security.ssrf.allow_private_ips,
    )
    if problem is not None:
        raise ConfigError(t.key("api_base_url"), problem)


# --- entry points ------------------------------------------------------------------------------


def parse_config(
    text: str, env: Mapping[str, str], source: str = "<string>", *, unset: Unset | None = None
) -> Config:
    """`unset`: collect unset variables there (as "") instead of failing on them."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{source}: invalid TOML: {e}") from None
    return _build(expand_env(raw, env, unset=unset), source)


def load_config(
    path: Path, env: Mapping[str, str] | None = None, *, unset: Unset | None = None
) -> Config:
    """The file at `path`, its `$VAR`s expanded from `env` (default: the process environment)
    over the `.env` file next to it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        raise ConfigError("", f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError("", f"{path}: cannot read: {e.strerror}") from None
    variables = with_dotenv(path, os.environ if env is None else env)
    return parse_config(text, variables, str(path), unset=unset)
