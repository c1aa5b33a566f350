"""The validated config values: frozen values (`proxy.frozen`), built by `proxy.config.load`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.affinity import AffinitySettings
from proxy.capabilities import (
    EMPTY_CATALOG,
    CapabilityOverride,
    Catalog,
    ModelCapabilities,
    Prefill,
    resolve_capabilities,
)
from proxy.config.reader import header_fault
from proxy.frozen import field, frozen, replace
from proxy.health import HealthSettings
from proxy.keywords import KeywordRule
from proxy.observe.settings import JournalSettings, MetricsSettings
from proxy.ranking import Ranking
from proxy.security.settings import ManagementSettings, SecuritySettings
from proxy.state.settings import StateSettings
from proxy.types import Chain, ProviderFormat, Scenario, Target

# The one place where a provider's name means anything: the default of its `format`.
FORMAT_BY_PROVIDER_NAME: Mapping[str, ProviderFormat] = MappingProxyType(
    {
        "anthropic": ProviderFormat.ANTHROPIC,
        "minimax": ProviderFormat.ANTHROPIC,
        "kimi": ProviderFormat.ANTHROPIC,
        "openai-codex": ProviderFormat.CODEX,
    }
)
PROVIDER_FORMATS = (ProviderFormat.OPENAI, ProviderFormat.ANTHROPIC, ProviderFormat.CODEX)


def default_format(provider_name: str) -> ProviderFormat:
    return FORMAT_BY_PROVIDER_NAME.get(provider_name.lower(), ProviderFormat.OPENAI)


# --- values ------------------------------------------------------------------------------------


@frozen
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


@frozen
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


@frozen
class ModelMapping:
    pattern: str
    to: Chain
    regex: re.Pattern[str] = field(repr=False, compare=False)
    ranking: Ranking | None = None
    """`to = "@fastest"` and the like: `to` holds the candidates, ordered per request."""

    def matches(self, model: str) -> bool:
        return self.regex.fullmatch(model) is not None


@frozen
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


@frozen
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


@frozen
class ProviderConfig:
    name: str
    api_base_url: str
    format: ProviderFormat
    models: tuple[str, ...]
    timeouts: Timeouts
    """Resolved: this provider's `timeouts` table over `[proxy.timeouts]`."""
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    prefill: Prefill = False
    """How this provider continues a partial answer (`PrefillStyle`), or False."""
    prompt_cache_key: bool = False
    """Send the conversation's key as `prompt_cache_key` (OpenAI's cache routing hint)."""
    forward_user_id: bool = False
    """Send an Anthropic client's `metadata.user_id` as `user` unchanged, not as its hash."""
    allow_private_network: bool = False
    capabilities: tuple[CapabilityOverride, ...] = ()
    """`[providers.capabilities."<model or glob>"]`: exact ids first, then globs in file order."""
    auth_file: str = ""
    """codex: the ChatGPT token store (default: the user data dir, see `proxy.codex_auth`)."""
    token_endpoint: str = ""
    """codex: where refreshes go (default: `codex_auth.DEFAULT_TOKEN_ENDPOINT`)."""
    _exact_models: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _model_globs: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    unsendable: str | None = field(default=None, init=False, repr=False, compare=False)
    """Why the key or a header cannot be sent (a control character aiohttp refuses), else None:
    found once here, so a request to this provider fails over without a per-request check."""

    def __post_init__(self) -> None:
        faults = (header_fault(value) for value in (self.api_key, *self.headers.values()))
        object.__setattr__(self, "unsendable", next((f for f in faults if f), None))

    def serves(self, model: str) -> bool:
        """Whether `model` is listed in `models` (ids compare exactly; globs match whole ids)."""
        return model in self._exact_models or any(g.fullmatch(model) for g in self._model_globs)


CAPABILITY_CACHE_SIZE = 4096


@frozen
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
    state: StateSettings = field(default_factory=StateSettings)
    affinity: AffinitySettings = field(default_factory=AffinitySettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    _capabilities: dict[Target, ModelCapabilities] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Resolved capabilities per target: resolving walks ~70 globs, and routing and the
    fallback loop ask on every request. Bounded, since `models = ["*"]` admits any name."""

    _by_name: dict[str, ProviderConfig] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """`provider(name)` is asked several times per request: a lookup, not a scan."""

    def __post_init__(self) -> None:
        for provider in self.providers:
            self._by_name.setdefault(provider.name, provider)

    def provider(self, name: str) -> ProviderConfig | None:
        return self._by_name.get(name)

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
