"""The `[proxy]`, `[affinity]` and `[[providers]]` sections, and the timeout keys `[router]`
shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from proxy.affinity import AffinitySettings
from proxy.capabilities import (
    OVERRIDE_KEYS,
    CapabilityOverride,
    capabilities_from_toml,
    default_prefill,
    parse_prefill,
)
from proxy.config.model import (
    PROVIDER_FORMATS,
    ProviderConfig,
    ProxySettings,
    Timeouts,
    default_format,
)
from proxy.config.reader import MISSING, TableReader, header_fault
from proxy.config.targets import GLOB_CHARS, PROVIDER_NAME, compile_glob_at
from proxy.errors import ConfigError, closest
from proxy.health import HealthSettings
from proxy.types import ProviderFormat

_PROXY_KEYS = (
    "host",
    "port",
    "api_key",
    "api_keys",
    "timeout_ms",
    "timeouts",
    "retry_after_cap_ms",
    "health",
)
_HEALTH_KEYS = ("failure_threshold", "open_ms", "config_error_cooldown_ms", "quota_cooldown_ms")
# config key -> Timeouts field; add a phase here and in Timeouts, nowhere else
TIMEOUT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "connect_ms": "connect",
        "response_headers_ms": "response_headers",
        "first_token_ms": "first_token",
        "first_token_ms_per_1k_input": "first_token_per_1k_input",
        "stream_idle_ms": "stream_idle",
    }
)
PROVIDER_KEYS = (
    "name",
    "api_base_url",
    "api_key",
    "models",
    "format",
    "headers",
    "timeouts",
    "prefill",
    "forward_user_id",
    "prompt_cache_key",
    "allow_private_network",
    "capabilities",
    "auth_file",
    "token_endpoint",
)
CODEX_BASE_URL = "https://chatgpt.com/backend-api/codex"
"""The ChatGPT backend: a codex provider's `api_base_url` unless the config names another."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def timeout_overrides(table: TableReader | None) -> dict[str, float]:
    if table is None:
        return {}
    return {
        field_name: table.millis(key, zero_ok=key == "first_token_ms_per_1k_input")
        for key, field_name in TIMEOUT_KEYS.items()
        if key in table.data
    }


def parse_proxy(top: TableReader) -> ProxySettings:
    t = top.table("proxy", _PROXY_KEYS) or TableReader({}, "proxy", _PROXY_KEYS)
    keys: list[str] = []
    if "api_key" in t.data:
        keys.append(t.header_value("api_key", empty_ok=False))
    for i, k in enumerate(t.strings("api_keys", [])):
        if not k.strip():
            raise ConfigError(f"proxy.api_keys[{i}]", "must not be empty")
        if fault := header_fault(k):
            raise ConfigError(f"proxy.api_keys[{i}]", fault)
        keys.append(k)
    timeouts = Timeouts().merged(timeout_overrides(t.table("timeouts", tuple(TIMEOUT_KEYS))))
    return ProxySettings(
        host=t.string("host", "127.0.0.1", empty_ok=False),
        port=t.integer("port", 3456, low=1, high=65535),
        api_keys=tuple(dict.fromkeys(keys)),
        total_timeout=t.millis("timeout_ms", 600000),
        timeouts=timeouts,
        retry_after_cap=t.millis("retry_after_cap_ms", 5000, zero_ok=True),
        health=_health(t.table("health", _HEALTH_KEYS)),
    )


def _health(t: TableReader | None) -> HealthSettings:
    if t is None:
        return HealthSettings()
    defaults = HealthSettings()
    return HealthSettings(
        failure_threshold=t.integer("failure_threshold", defaults.failure_threshold, low=1),
        open_seconds=t.millis("open_ms", defaults.open_seconds * 1000),
        config_error_cooldown=t.millis(
            "config_error_cooldown_ms", defaults.config_error_cooldown * 1000, zero_ok=True
        ),
        quota_cooldown=t.millis("quota_cooldown_ms", defaults.quota_cooldown * 1000, zero_ok=True),
    )


_AFFINITY_KEYS = ("enabled", "ttl_ms", "max_entries")


def parse_affinity(top: TableReader) -> AffinitySettings:
    t = top.table("affinity", _AFFINITY_KEYS)
    if t is None:
        return AffinitySettings()
    defaults = AffinitySettings()
    return AffinitySettings(
        enabled=t.boolean("enabled", True),
        ttl=t.millis("ttl_ms", defaults.ttl * 1000),
        max_entries=t.integer("max_entries", defaults.max_entries, low=1),
    )


def parse_provider(t: TableReader, defaults: Timeouts) -> ProviderConfig:
    name = t.string("name")
    if not PROVIDER_NAME.fullmatch(name):
        raise ConfigError(
            t.key("name"), f"invalid provider name {name!r}: use letters, digits, '.', '_', '-'"
        )
    codex = t.data.get("format", default_format(name).value) == ProviderFormat.CODEX.value
    url = t.string("api_base_url", CODEX_BASE_URL if codex else MISSING)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(t.key("api_base_url"), f"expected an http(s) URL, got {url!r}")
    fmt_name = t.string("format", default_format(name).value)
    if fmt_name not in PROVIDER_FORMATS:
        known = [f.value for f in PROVIDER_FORMATS]
        close = closest(fmt_name.lower(), known)
        hint = f"did you mean '{close}'? " if close else ""
        raise ConfigError(
            t.key("format"),
            f"unknown format {fmt_name!r} ({hint}known: openai, anthropic, codex)",
        )
    fmt = ProviderFormat(fmt_name)
    models: list[str] = t.strings("models")
    if not models:
        raise ConfigError(t.key("models"), "must list at least one model id or glob ('*' = any)")
    globs: list[re.Pattern[str]] = []
    for i, m in enumerate(models):
        if not m.strip() or m != m.strip():
            raise ConfigError(f"{t.key('models')}[{i}]", f"invalid model id {m!r}")
        if GLOB_CHARS.intersection(m):
            globs.append(compile_glob_at(m, f"{t.key('models')}[{i}]", ignore_case=False))
    header_map: dict[str, str] = {}
    for hname, hvalue in t.get("headers", dict, "table", {}).items():
        hkey = f"{t.key('headers')}.{hname}"
        if not _HEADER_NAME.fullmatch(hname):
            raise ConfigError(hkey, "invalid HTTP header name")
        if not isinstance(hvalue, str):
            raise ConfigError(hkey, "expected a string")
        if fault := header_fault(hvalue):
            raise ConfigError(hkey, fault)
        header_map[hname] = hvalue
    timeouts = t.table("timeouts", tuple(TIMEOUT_KEYS))
    return ProviderConfig(
        name=name,
        api_base_url=url,
        format=fmt,
        models=tuple(models),
        timeouts=defaults.merged(timeout_overrides(timeouts)),
        # A key no header can carry fails this provider over (`unsendable`), not the config.
        api_key=t.string("api_key", ""),
        headers=MappingProxyType(header_map),
        prefill=(
            default_prefill(fmt, url)
            if t.data.get("prefill", MISSING) is MISSING
            else parse_prefill(t.data["prefill"], fmt, t.key("prefill"))
        ),
        prompt_cache_key=_prompt_cache_key(t, fmt),
        forward_user_id=t.boolean("forward_user_id", False),
        allow_private_network=t.boolean("allow_private_network", False),
        capabilities=_capability_overrides(t, models, globs, fmt),
        auth_file=_codex_key(t, "auth_file", fmt),
        token_endpoint=_codex_key(t, "token_endpoint", fmt),
        _exact_models=frozenset(m for m in models if not GLOB_CHARS.intersection(m)),
        _model_globs=tuple(globs),
    )


def _prompt_cache_key(t: TableReader, fmt: ProviderFormat) -> bool:
    """On for codex providers (the ChatGPT backend takes the key, as the Codex CLI sends it);
    opt-in for OpenAI-compatible ones, since strict servers refuse fields they do not know."""
    value: bool = t.boolean("prompt_cache_key", fmt is ProviderFormat.CODEX)
    if value and fmt is ProviderFormat.ANTHROPIC:
        raise ConfigError(
            t.key("prompt_cache_key"),
            "Anthropic-format providers cache at "
            "cache_control breakpoints and take no prompt_cache_key",
        )
    return value


def _codex_key(t: TableReader, key: str, fmt: ProviderFormat) -> str:
    value: str = t.string(key, "")
    if value and fmt is not ProviderFormat.CODEX:
        raise ConfigError(t.key(key), "only codex providers take this key")
    if key == "token_endpoint" and value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(t.key(key), f"expected an http(s) URL, got {value!r}")
    return value


def _capability_overrides(
    t: TableReader, models: list[str], globs: list[re.Pattern[str]], fmt: ProviderFormat
) -> tuple[CapabilityOverride, ...]:
    exact: list[CapabilityOverride] = []
    globbed: list[CapabilityOverride] = []
    for pattern, values in t.get("capabilities", dict, "table", {}).items():
        key = f"{t.key('capabilities')}." + (
            pattern if re.fullmatch(r"[A-Za-z0-9_-]+", pattern) else f'"{pattern}"'
        )
        misplaced = (
            sorted(set(values).intersection(PROVIDER_KEYS).difference(OVERRIDE_KEYS))
            if isinstance(values, dict)
            else []
        )
        if misplaced:
            raise ConfigError(
                f"{key}.{misplaced[0]}",
                "unknown key (a provider key written after a [providers.capabilities.<model>] "
                "table lands in that table: move it above the first one)",
            )
        caps = capabilities_from_toml(values, key, fmt)
        if GLOB_CHARS.intersection(pattern):
            globbed.append(
                CapabilityOverride(pattern, caps, compile_glob_at(pattern, key, ignore_case=True))
            )
            continue
        if pattern not in models and not any(g.fullmatch(pattern) for g in globs):
            close = closest(pattern, models)
            hint = f"; did you mean '{close}'?" if close else ""
            raise ConfigError(key, f"this provider does not serve model '{pattern}'{hint}")
        exact.append(CapabilityOverride(pattern, caps, re.compile(re.escape(pattern))))
    return (*exact, *globbed)
