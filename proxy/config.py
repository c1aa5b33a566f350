"""The config file: TOML in, one validated frozen `Config` out.

The shape is the reference proxy's (`[proxy]`, `[router]`, `[[providers]]`), so its users can
bring their file, but nothing is silently ignored: every problem raises `ConfigError` whose `key`
is the dotted path of the offending value (`router.think[2]`, `providers[1].api_key`).

`$NAME` and `${NAME}` expand in every string value; `$$` is a literal `$`. Globs (`*`, `?`,
`[...]`, `{a,b}`) are compiled once here so that routing never compiles anything per request.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from proxy.capabilities import (
    EMPTY_CATALOG,
    OVERRIDE_KEYS,
    CapabilityOverride,
    Catalog,
    ModelCapabilities,
    capabilities_from_toml,
    resolve_capabilities,
)
from proxy.errors import ConfigError
from proxy.health import HealthSettings
from proxy.keywords import KeywordRule, compile_rule, read_taxonomy, taxonomy_rules
from proxy.ranking import Ranking, parse_ranking
from proxy.security.settings import (
    ManagementSettings,
    SecuritySettings,
    parse_management,
    parse_security,
)
from proxy.security.ssrf import url_refusal
from proxy.types import Chain, Scenario, Target, WireFormat

log = logging.getLogger("llmproxy.config")

SYSTEM_CONFIG_PATH = Path("/etc/llmproxy/config.toml")

# The one place where a provider's name means anything: the default of its `format`.
FORMAT_BY_PROVIDER_NAME: Mapping[str, WireFormat] = MappingProxyType(
    {
        "anthropic": WireFormat.ANTHROPIC,
        "minimax": WireFormat.ANTHROPIC,
        "kimi": WireFormat.ANTHROPIC,
        "openai-codex": WireFormat.CODEX,
    }
)
PROVIDER_FORMATS = (WireFormat.OPENAI, WireFormat.ANTHROPIC, WireFormat.CODEX)


def default_format(provider_name: str) -> WireFormat:
    return FORMAT_BY_PROVIDER_NAME.get(provider_name.lower(), WireFormat.OPENAI)


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt phase deadlines, in seconds."""

    connect: float = 10.0
    response_headers: float = 60.0
    first_token: float = 60.0
    first_token_per_1k_input: float = 0.5
    stream_idle: float = 60.0

    def merged(self, override: Mapping[str, float]) -> Timeouts:
        """These timeouts with the fields named in `override` (field name -> seconds) replaced."""
        return replace(self, **override)

    def first_token_for(self, input_tokens: int) -> float:
        """Time-to-first-token allowance: long prompts take longer to prefill."""
        return self.first_token + self.first_token_per_1k_input * max(input_tokens, 0) / 1000


@dataclass(frozen=True, slots=True)
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 3456
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    total_timeout: float = 600.0
    """Deadline for a whole request, across every target of its chain (seconds)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_after_cap: float = 5.0
    """The longest Retry-After worth waiting for before retrying the same target (seconds)."""
    health: HealthSettings = field(default_factory=HealthSettings)


@dataclass(frozen=True, slots=True)
class ModelMapping:
    pattern: str
    to: Chain
    regex: re.Pattern[str] = field(repr=False, compare=False)
    ranking: Ranking | None = None
    """`to = "@fastest"` and the like: `to` holds the candidates, ordered per request."""

    def matches(self, model: str) -> bool:
        return self.regex.fullmatch(model) is not None


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """`[router.options.<route>]`: how requests on one route are served."""

    buffer: bool = False
    """Hold a stream's whole answer until the upstream completes: any failure is then an
    invisible restart, at the price of no incremental output."""
    content_filter_fallback: bool = False
    """Try the next target after a content-filter refusal instead of returning it."""
    timeouts: Mapping[str, float] = field(default_factory=dict)
    """Timeout overrides (Timeouts field -> seconds) applied over each provider's own."""


NO_ROUTE_OPTIONS = RouteOptions()


@dataclass(frozen=True, slots=True)
class RouterConfig:
    routes: Mapping[Scenario, Chain]
    options: Mapping[Scenario, RouteOptions] = field(default_factory=dict)
    long_context_threshold: int = 60000
    background_model_pattern: str = "*haiku*"
    background_regex: re.Pattern[str] = field(
        default=re.compile(r".*haiku.*", re.IGNORECASE | re.DOTALL), repr=False, compare=False
    )
    model_mappings: tuple[ModelMapping, ...] = ()
    keyword_rules: tuple[KeywordRule, ...] = ()
    """`[[router.keyword_rules]]`, then the rules of `taxonomy_dir`'s files."""
    taxonomy_dir: Path | None = None

    @property
    def default(self) -> Chain:
        return self.routes[Scenario.DEFAULT]

    def route(self, scenario: Scenario) -> Chain | None:
        return self.routes.get(scenario)

    def route_options(self, scenario: Scenario) -> RouteOptions:
        return self.options.get(scenario, NO_ROUTE_OPTIONS)

    def is_background_model(self, model: str) -> bool:
        return self.background_regex.fullmatch(model) is not None

    def mapping_for(self, model: str) -> ModelMapping | None:
        return next((m for m in self.model_mappings if m.matches(model)), None)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    api_base_url: str
    format: WireFormat
    models: tuple[str, ...]
    timeouts: Timeouts
    """Resolved: this provider's `timeouts` table over `[proxy.timeouts]`."""
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    prefill: bool = False
    allow_private_network: bool = False
    capabilities: tuple[CapabilityOverride, ...] = ()
    """`[providers.capabilities."<model or glob>"]`: exact ids first, then globs in file order."""
    auth_file: str = ""
    """codex: the ChatGPT token store (default: the user data dir, see `proxy.codex_auth`)."""
    token_endpoint: str = ""
    """codex: where refreshes go (default: `codex_auth.DEFAULT_TOKEN_ENDPOINT`)."""
    _exact_models: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _model_globs: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def serves(self, model: str) -> bool:
        """Whether `model` is listed in `models` (ids compare exactly; globs match whole ids)."""
        return model in self._exact_models or any(g.fullmatch(model) for g in self._model_globs)


CAPABILITY_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Config:
    proxy: ProxySettings
    router: RouterConfig
    providers: tuple[ProviderConfig, ...]
    source: str = "<string>"
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Raw `[oauth]`, `[webhooks]` tables, kept for later use (they may hold secrets)."""
    catalog: Catalog = field(default=EMPTY_CATALOG, repr=False, compare=False)
    """Provider model lists cached by `llmproxy providers refresh` (`with_catalog`)."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    management: ManagementSettings = field(default_factory=ManagementSettings)
    _capabilities: dict[Target, ModelCapabilities] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Resolved capabilities per target: resolving walks ~70 globs, and routing and the
    fallback loop ask on every request. Bounded, since `models = ["*"]` admits any name."""

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def capabilities(self, target: Target) -> ModelCapabilities:
        """What `target` can do: config overrides, then the catalog, then built-in values."""
        known = self._capabilities.get(target)
        if known is not None:
            return known
        provider = self.provider(target.provider)
        if provider is None:
            resolved = resolve_capabilities(target.model)
        else:
            resolved = resolve_capabilities(
                target.model, provider.capabilities, self.catalog.get(target), provider.prefill
            )
        if len(self._capabilities) < CAPABILITY_CACHE_SIZE:
            self._capabilities[target] = resolved
        return resolved

    def with_catalog(self, catalog: Catalog) -> Config:
        return replace(self, catalog=catalog)

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)


# --- globs and targets -------------------------------------------------------------------------

GLOB_CHARS = frozenset("*?[{")


def compile_glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A whole-string regex for a shell-style glob with `*`, `?`, `[...]`/`[!...]`, `{a,b}`.

    Raises ValueError for an unclosed `[` or `{` or a bad character range.
    """
    regex, end = _glob_sequence(pattern, 0, nested=False)
    assert end == len(pattern)
    try:
        return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    except re.error as e:
        raise ValueError(f"invalid glob {pattern!r}: {e}") from None


def _glob_sequence(p: str, i: int, *, nested: bool) -> tuple[str, int]:
    out: list[str] = []
    while i < len(p):
        c = p[i]
        if nested and c in ",}":
            break
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            start = i + 2 if p.startswith(("[!", "[^"), i) else i + 1
            close = p.find("]", start + 1)  # a `]` right after `[` is literal
            if close < 0:
                raise ValueError(f"unclosed '[' in glob {p!r}")
            body = p[start:close]
            # escape everything but `-` so that `[`, `&`, `~` never form nested-set syntax
            chars = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
            out.append(f"[{'^' if start == i + 2 else ''}{chars}]")
            i = close
        elif c == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                alt, i = _glob_sequence(p, i, nested=True)
                alternatives.append(alt)
                if i >= len(p):
                    raise ValueError(f"unclosed '{{' in glob {p!r}")
                if p[i] == "}":
                    break
                i += 1
            out.append(f"(?:{'|'.join(alternatives)})")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out), i


_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FORBIDDEN_IN_MODEL = re.compile(r"[\s,|]")


def parse_target(text: str) -> Target:
    """`provider,model` or `provider:model`, split at the first `,` if any, else the first `:`.

    So `ollama,qwen2.5-coder:latest` and `openrouter:meta-llama/x:free` both keep their tags.
    Raises ConfigError (a ValueError) with an empty key.
    """
    s = text.strip()
    sep = "," if "," in s else ":" if ":" in s else None
    if sep is None:
        raise ConfigError("", f"{text!r} is not a target: expected 'provider,model'")
    provider, _, model = s.partition(sep)
    provider, model = provider.strip(), model.strip()
    if not provider or not model:
        raise ConfigError("", f"{text!r} is not a target: empty provider or model")
    if not _PROVIDER_NAME.fullmatch(provider):
        raise ConfigError("", f"{text!r}: invalid provider name {provider!r}")
    if _FORBIDDEN_IN_MODEL.search(model):
        raise ConfigError("", f"{text!r}: model {model!r} contains whitespace, ',' or '|'")
    return Target(provider, model)


def parse_chain(text: str) -> Chain:
    """`target|target|...`. Errors carry the relative key of the bad part, e.g. `[2]`."""
    if not text.strip():
        raise ConfigError("", "empty chain: expected 'provider,model|provider,model|...'")
    targets: list[Target] = []
    for i, part in enumerate(text.split("|")):
        if not part.strip():
            raise ConfigError(f"[{i}]", "empty target (stray or doubled '|')")
        try:
            target = parse_target(part)
        except ConfigError as e:
            raise ConfigError(f"[{i}]", e.message) from None
        if target in targets:
            raise ConfigError(f"[{i}]", f"duplicate target '{target}'")
        targets.append(target)
    return tuple(targets)


# --- $VAR expansion ----------------------------------------------------------------------------

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


def expand_env(data: Any, env: Mapping[str, str], key: str = "") -> Any:
    """A copy of a parsed TOML tree with every string value expanded (keys are not)."""
    if isinstance(data, str):
        return expand_string(data, env, key)
    if isinstance(data, dict):
        return {k: expand_env(v, env, f"{key}.{k}" if key else k) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, env, f"{key}[{i}]") for i, v in enumerate(data)]
    return data


# --- reading tables with key paths -------------------------------------------------------------

_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
)


def _type_name(value: Any) -> str:
    return next((name for t, name in _TOML_TYPES if isinstance(value, t)), "datetime")


_MISSING: Any = object()
_REFERENCE_ONLY_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "router.plan_implementation": "the reference's plan_implementation route is not supported",
        "router.model_exclusions": "model_exclusions is not supported; narrow providers' models",
    }
)
_ROUTER_SCALARS = frozenset(
    {s.value for s in Scenario}
    | {"long_context_threshold", "background_model_pattern", "strategy", "taxonomy_dir"}
)


class _Table:
    """One TOML table plus its key path; rejects unknown keys when it is made."""

    def __init__(
        self, data: Any, path: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected table, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        for key in data:
            if key in compat:
                log.warning("%s: accepted for compatibility but has no effect", self.key(key))
            elif key not in known:
                raise ConfigError(self.key(key), self._unknown(key, known))

    def _unknown(self, key: str, known: tuple[str, ...]) -> str:
        general = re.sub(r"\[\d+\]", "", self.key(key))
        if general in _REFERENCE_ONLY_KEYS:
            return f"unknown key ({_REFERENCE_ONLY_KEYS[general]})"
        for array, noun in (("model_mappings", "mapping"), ("keyword_rules", "rule")):
            if f"router.{array}" in general and key in _ROUTER_SCALARS:
                return (
                    f"unknown key (a router key written after a [[router.{array}]] table "
                    f"lands in that {noun}: move '{key}' above the first {noun})"
                )
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], expected: str, default: Any) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise ConfigError(self.key(name), "required key is missing")
            return default
        # bool is an int subclass; TOML keeps them apart, so must we
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ConfigError(self.key(name), f"expected {expected}, got {_type_name(value)}")
        return value

    def string(self, name: str, default: Any = _MISSING, *, empty_ok: bool = True) -> Any:
        value = self.get(name, str, "string", default)
        if not empty_ok and isinstance(value, str) and not value.strip():
            raise ConfigError(self.key(name), "must not be empty")
        return value

    def integer(
        self, name: str, default: Any = _MISSING, *, low: int = 1, high: int = 2**53
    ) -> Any:
        value = self.get(name, int, "integer", default)
        if value is not None and not low <= value <= high:
            raise ConfigError(self.key(name), f"must be between {low} and {high}, got {value}")
        return value

    def millis(self, name: str, default: Any = _MISSING, *, zero_ok: bool = False) -> Any:
        """A duration in milliseconds, returned in seconds."""
        value = self.get(name, (int, float), "number of milliseconds", default)
        if value is None:
            return None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise ConfigError(self.key(name), f"must be {'>= 0' if zero_ok else '> 0'}")
        return float(value) / 1000

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        return self.get(name, bool, "boolean", default)

    def strings(self, name: str, default: Any = _MISSING) -> Any:
        value = self.get(name, list, "array of strings", default)
        for i, item in enumerate(value or ()):
            if not isinstance(item, str):
                got = _type_name(item)
                raise ConfigError(f"{self.key(name)}[{i}]", f"expected string, got {got}")
        return value

    def table(
        self, name: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> _Table | None:
        return _Table(self.data[name], self.key(name), known, compat) if name in self.data else None

    def tables(
        self, name: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> Iterator[_Table]:
        items = self.get(name, list, "array of tables", [])
        for i, item in enumerate(items):
            yield _Table(item, f"{self.key(name)}[{i}]", known, compat)


# --- sections ----------------------------------------------------------------------------------

_TOP_KEYS = ("proxy", "router", "providers", "security", "management", "oauth", "webhooks")
_RAW_SECTIONS = ("oauth", "webhooks")
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
_TIMEOUT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "connect_ms": "connect",
        "response_headers_ms": "response_headers",
        "first_token_ms": "first_token",
        "first_token_ms_per_1k_input": "first_token_per_1k_input",
        "stream_idle_ms": "stream_idle",
    }
)
_ROUTE_KEYS = tuple(s.value for s in Scenario)
_ROUTER_KEYS = (
    *_ROUTE_KEYS,
    "long_context_threshold",
    "background_model_pattern",
    "model_mappings",
    "options",
    "keyword_rules",
    "taxonomy_dir",
)
_MAPPING_KEYS = ("from", "to", "candidates")
_KEYWORD_RULE_KEYS = ("name", "phrases", "route", "priority")
_ROUTE_OPTION_KEYS = ("buffer", "content_filter_fallback", "timeouts")
_PROVIDER_KEYS = (
    "name",
    "api_base_url",
    "api_key",
    "models",
    "format",
    "headers",
    "timeouts",
    "prefill",
    "allow_private_network",
    "capabilities",
    "auth_file",
    "token_endpoint",
)
CODEX_BASE_URL = "https://chatgpt.com/backend-api/codex"
"""The ChatGPT backend: a codex provider's `api_base_url` unless the config names another."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _timeout_overrides(table: _Table | None) -> dict[str, float]:
    if table is None:
        return {}
    return {
        field_name: table.millis(key, zero_ok=key == "first_token_ms_per_1k_input")
        for key, field_name in _TIMEOUT_KEYS.items()
        if key in table.data
    }


def _proxy(top: _Table) -> ProxySettings:
    t = top.table("proxy", _PROXY_KEYS) or _Table({}, "proxy", _PROXY_KEYS)
    keys: list[str] = []
    if "api_key" in t.data:
        keys.append(t.string("api_key", empty_ok=False))
    for i, k in enumerate(t.strings("api_keys", [])):
        if not k.strip():
            raise ConfigError(f"proxy.api_keys[{i}]", "must not be empty")
        keys.append(k)
    timeouts = Timeouts().merged(_timeout_overrides(t.table("timeouts", tuple(_TIMEOUT_KEYS))))
    return ProxySettings(
        host=t.string("host", "127.0.0.1", empty_ok=False),
        port=t.integer("port", 3456, low=1, high=65535),
        api_keys=tuple(dict.fromkeys(keys)),
        total_timeout=t.millis("timeout_ms", 600000),
        timeouts=timeouts,
        retry_after_cap=t.millis("retry_after_cap_ms", 5000, zero_ok=True),
        health=_health(t.table("health", _HEALTH_KEYS)),
    )


def _health(t: _Table | None) -> HealthSettings:
    if t is None:
        return HealthSettings()
    defaults = HealthSettings()
    return HealthSettings(
        failure_threshold=t.integer("failure_threshold", defaults.failure_threshold, low=1),
        open_seconds=t.millis("open_ms", defaults.open_seconds * 1000),
        config_error_cooldown=t.millis(
            "config_error_cooldown_ms", defaults.config_error_cooldown * 1000, zero_ok=True
        ),
        quota_cooldown=t.millis("quota_cooldown_ms", defaults.quota_cooldown * 1000,
                                zero_ok=True),
    )


def _provider(t: _Table, defaults: Timeouts) -> ProviderConfig:
    name = t.string("name")
    if not _PROVIDER_NAME.fullmatch(name):
        raise ConfigError(
            t.key("name"), f"invalid provider name {name!r}: use letters, digits, '.', '_', '-'"
        )
    codex = t.data.get("format", default_format(name).value) == WireFormat.CODEX.value
    url = t.string("api_base_url", CODEX_BASE_URL if codex else _MISSING)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(t.key("api_base_url"), f"expected an http(s) URL, got {url!r}")
    fmt_name = t.string("format", default_format(name).value)
    if fmt_name not in PROVIDER_FORMATS:
        raise ConfigError(
            t.key("format"), f"unknown format {fmt_name!r} (known: openai, anthropic, codex)"
        )
    fmt = WireFormat(fmt_name)
    models: list[str] = t.strings("models")
    if not models:
        raise ConfigError(t.key("models"), "must list at least one model id or glob ('*' = any)")
    globs: list[re.Pattern[str]] = []
    for i, m in enumerate(models):
        if not m.strip() or m != m.strip():
            raise ConfigError(f"{t.key('models')}[{i}]", f"invalid model id {m!r}")
        if GLOB_CHARS.intersection(m):
            globs.append(_glob(m, f"{t.key('models')}[{i}]", ignore_case=False))
    header_map: dict[str, str] = {}
    for hname, hvalue in t.get("headers", dict, "table", {}).items():
        hkey = f"{t.key('headers')}.{hname}"
        if not _HEADER_NAME.fullmatch(hname):
            raise ConfigError(hkey, "invalid HTTP header name")
        if not isinstance(hvalue, str) or any(c in hvalue for c in "\r\n\0"):
            raise ConfigError(hkey, "expected a single-line string")
        header_map[hname] = hvalue
    timeouts = t.table("timeouts", tuple(_TIMEOUT_KEYS))
    return ProviderConfig(
        name=name,
        api_base_url=url,
        format=fmt,
        models=tuple(models),
        timeouts=defaults.merged(_timeout_overrides(timeouts)),
        api_key=t.string("api_key", ""),
        headers=MappingProxyType(header_map),
        prefill=t.boolean("prefill", fmt is WireFormat.ANTHROPIC),
        allow_private_network=t.boolean("allow_private_network", False),
        capabilities=_capability_overrides(t, models, globs),
        auth_file=_codex_key(t, "auth_file", fmt),
        token_endpoint=_codex_key(t, "token_endpoint", fmt),
        _exact_models=frozenset(m for m in models if not GLOB_CHARS.intersection(m)),
        _model_globs=tuple(globs),
    )


def _codex_key(t: _Table, key: str, fmt: WireFormat) -> str:
    value: str = t.string(key, "")
    if value and fmt is not WireFormat.CODEX:
        raise ConfigError(t.key(key), "only codex providers take this key")
    if key == "token_endpoint" and value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(t.key(key), f"expected an http(s) URL, got {value!r}")
    return value


def _capability_overrides(
    t: _Table, models: list[str], globs: list[re.Pattern[str]]
) -> tuple[CapabilityOverride, ...]:
    exact: list[CapabilityOverride] = []
    globbed: list[CapabilityOverride] = []
    for pattern, values in t.get("capabilities", dict, "table", {}).items():
        key = f"{t.key('capabilities')}." + (
            pattern if re.fullmatch(r"[A-Za-z0-9_-]+", pattern) else f'"{pattern}"'
        )
        misplaced = sorted(set(values).intersection(_PROVIDER_KEYS).difference(
            OVERRIDE_KEYS)) if isinstance(values, dict) else []
        if misplaced:
            raise ConfigError(
                f"{key}.{misplaced[0]}",
                "unknown key (a provider key written after a [providers.capabilities.<model>] "
                "table lands in that table: move it above the first one)",
            )
        caps = capabilities_from_toml(values, key)
        if GLOB_CHARS.intersection(pattern):
            globbed.append(CapabilityOverride(pattern, caps, _glob(pattern, key, ignore_case=True)))
            continue
        if pattern not in models and not any(g.fullmatch(pattern) for g in globs):
            close = difflib.get_close_matches(pattern, models, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(key, f"this provider does not serve model '{pattern}'{hint}")
        exact.append(CapabilityOverride(pattern, caps, re.compile(re.escape(pattern))))
    return (*exact, *globbed)


def _glob(pattern: str, key: str, *, ignore_case: bool) -> re.Pattern[str]:
    try:
        return compile_glob(pattern, ignore_case=ignore_case)
    except ValueError as e:
        raise ConfigError(key, str(e)) from None


def _chain(text: str, key: str, providers: Mapping[str, ProviderConfig]) -> Chain:
    """Parse and check that every target's provider exists and serves its model."""
    try:
        chain = parse_chain(text)
    except ConfigError as e:
        raise ConfigError(f"{key}{e.key}", e.message) from None
    for i, target in enumerate(chain):
        provider = providers.get(target.provider)
        if provider is None:
            known = ", ".join(providers) or "none configured"
            close = difflib.get_close_matches(target.provider, list(providers), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{key}[{i}]", f"unknown provider '{target.provider}' (known: {known}){hint}"
            )
        if not provider.serves(target.model):
            close = difflib.get_close_matches(target.model, provider.models, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{key}[{i}]",
                f"model '{target.model}' is not served by provider '{provider.name}' "
                f"(its models: {', '.join(provider.models)}){hint}",
            )
    return chain


def _mapping_target(
    m: _Table, providers: Mapping[str, ProviderConfig]
) -> tuple[Chain, Ranking | None]:
    """A plain chain, or a ranking over `candidates` (default: every exact model id)."""
    text = m.string("to")
    try:
        ranking = parse_ranking(text)
    except ValueError as e:
        raise ConfigError(m.key("to"), str(e)) from None
    candidates = m.string("candidates", None, empty_ok=False)
    if ranking is None:
        if candidates is not None:
            raise ConfigError(m.key("candidates"), "only a ranked mapping has candidates "
                              "(to = \"@cheapest\", \"@fastest\" or \"@best\")")
        return _chain(text, m.key("to"), providers), None
    if candidates is not None:
        return _chain(candidates, m.key("candidates"), providers), ranking
    every = tuple(Target(p.name, model) for p in providers.values() for model in p.models
                  if not GLOB_CHARS.intersection(model))
    if not every:
        raise ConfigError(m.key("candidates"), "required: no provider lists an exact model id")
    return every, ranking


def _route_chain(
    route: str, key: str, routes: Mapping[Scenario, Chain], providers: Mapping[str, ProviderConfig]
) -> Chain:
    """A keyword rule's `route`: the name of a configured route, or a chain."""
    name = route.strip()
    if name in _ROUTE_KEYS:
        chain = routes.get(Scenario(name))
        if chain is None:
            raise ConfigError(key, f"route '{name}' is not set in [router]")
        return chain
    if "," not in name and ":" not in name:
        known = ", ".join(s.value for s in routes)
        raise ConfigError(key, f"unknown route '{name}' (routes: {known}; "
                          "or a chain 'provider,model|provider,model')")
    return _chain(name, key, providers)


def _keyword_rules(
    t: _Table,
    routes: Mapping[Scenario, Chain],
    providers: Mapping[str, ProviderConfig],
    base: Path | None,
) -> tuple[KeywordRule, ...]:
    rules: list[KeywordRule] = []
    names: dict[str, str] = {}
    for k in t.tables("keyword_rules", _KEYWORD_RULE_KEYS):
        name = k.string("name", empty_ok=False)
        if name in names:
            raise ConfigError(k.key("name"), f"duplicate rule name '{name}' ({names[name]})")
        names[name] = k.key("name")
        phrases: list[str] = k.strings("phrases")
        route = k.string("route", empty_ok=False)
        chain = _route_chain(route, k.key("route"), routes, providers)
        priority = k.integer("priority", 50, low=0, high=100)
        try:
            rule = compile_rule(name, phrases, chain, priority=priority, route=route,
                                origin=k.path)
        except ValueError as e:
            raise ConfigError(k.key("phrases"), str(e)) from None
        rules.append(rule)
    t.string("taxonomy_dir", None, empty_ok=False)
    path = _taxonomy_path(t, base)
    if path is not None:
        by_name = {p.name.lower(): p for p in providers.values()}

        def resolve(target: Target) -> Target | str:
            provider = by_name.get(target.provider.lower())
            if provider is None:
                return f"provider '{target.provider}' is not configured"
            if not provider.serves(target.model):
                return f"provider '{provider.name}' does not list model '{target.model}'"
            return Target(provider.name, target.model)

        rules.extend(taxonomy_rules(read_taxonomy(path), routes, resolve))
    return tuple(rules)


def _router(
    top: _Table, providers: Mapping[str, ProviderConfig], base: Path | None = None
) -> RouterConfig:
    t = top.table("router", _ROUTER_KEYS, compat=("strategy",))
    if t is None:
        raise ConfigError("router", "required table is missing (it needs at least 'default')")
    t.string("strategy", None)
    routes: dict[Scenario, Chain] = {}
    for scenario in Scenario:
        text = t.string(scenario.value, _MISSING if scenario is Scenario.DEFAULT else None)
        if text is not None:
            routes[scenario] = _chain(text, t.key(scenario.value), providers)
    pattern = t.string("background_model_pattern", "*haiku*", empty_ok=False)
    mappings: list[ModelMapping] = []
    for m in t.tables("model_mappings", _MAPPING_KEYS, compat=("bidirectional",)):
        m.boolean("bidirectional", None)
        source = m.string("from", empty_ok=False)
        regex = _glob(source, m.key("from"), ignore_case=True)
        to, ranking = _mapping_target(m, providers)
        mappings.append(ModelMapping(source, to, regex, ranking))
    options: dict[Scenario, RouteOptions] = {}
    option_tables = t.table("options", tuple(s.value for s in Scenario))
    if option_tables is not None:
        for scenario in Scenario:
            o = option_tables.table(scenario.value, _ROUTE_OPTION_KEYS)
            if o is None:
                continue
            if scenario not in routes:
                raise ConfigError(o.path, f"options for route '{scenario.value}', which is not set")
            options[scenario] = RouteOptions(
                buffer=o.boolean("buffer", False),
                content_filter_fallback=o.boolean("content_filter_fallback", False),
                timeouts=_timeout_overrides(o.table("timeouts", tuple(_TIMEOUT_KEYS))),
            )
    return RouterConfig(
        routes=MappingProxyType(routes),
        options=MappingProxyType(options),
        long_context_threshold=t.integer("long_context_threshold", 60000),
        background_model_pattern=pattern,
        background_regex=_glob(pattern, t.key("background_model_pattern"), ignore_case=True),
        model_mappings=tuple(mappings),
        keyword_rules=_keyword_rules(t, routes, providers, base),
        taxonomy_dir=_taxonomy_path(t, base),
    )


def _taxonomy_path(t: _Table, base: Path | None) -> Path | None:
    """`taxonomy_dir`, relative to the config file's directory (or the working directory)."""
    directory = t.data.get("taxonomy_dir")
    if not isinstance(directory, str):
        return None
    path = Path(directory).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _build(data: dict[str, Any], source: str) -> Config:
    top = _Table(data, "", _TOP_KEYS)
    proxy = _proxy(top)
    security = parse_security(top)
    management = parse_management(top)
    providers: dict[str, ProviderConfig] = {}
    seen: dict[str, str] = {}
    compat = ("transformers",)
    for t in top.tables("providers", _PROVIDER_KEYS, compat=compat):
        t.strings("transformers", None)
        provider = _provider(t, proxy.timeouts)
        _check_destination(t, provider, security)
        if provider.name.lower() in seen:
            first = seen[provider.name.lower()]
            raise ConfigError(t.key("name"), f"duplicate provider name '{provider.name}' ({first})")
        seen[provider.name.lower()] = t.key("name")
        providers[provider.name] = provider
    if not providers:
        raise ConfigError("providers", "at least one [[providers]] entry is required")
    source_path = Path(source)
    router = _router(top, providers, source_path.parent if source_path.is_file() else None)
    extra: dict[str, Mapping[str, Any]] = {}
    for name in _RAW_SECTIONS:
        if name in data:
            if not isinstance(data[name], dict):
                raise ConfigError(name, f"expected table, got {_type_name(data[name])}")
            extra[name] = MappingProxyType(data[name])
    return Config(proxy, router, tuple(providers.values()), source, MappingProxyType(extra),
                  security=security, management=management)


def _check_destination(t: _Table, provider: ProviderConfig, security: SecuritySettings) -> None:
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


def parse_config(text: str, env: Mapping[str, str], source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{source}: invalid TOML: {e}") from None
    return _build(expand_env(raw, env), source)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        raise ConfigError("", f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError("", f"{path}: cannot read: {e.strerror}") from None
    return parse_config(text, os.environ if env is None else env, str(path))


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
    user = (user_dir or platformdirs.user_config_path("llmproxy")) / "config.toml"
    for candidate in (user, system_path):
        if candidate.is_file():
            return candidate
    return None
