"""The `[router]` section: routes, model mappings, per-route options, keyword rules."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from proxy.config.model import ModelMapping, ProviderConfig, RouteOptions, RouterConfig
from proxy.config.reader import MISSING, TableReader
from proxy.config.sections import TIMEOUT_KEYS, timeout_overrides
from proxy.config.targets import GLOB_CHARS, compile_glob_at, parse_chain
from proxy.errors import ConfigError, closest
from proxy.keywords import KeywordRule, compile_rule, read_taxonomy, taxonomy_rules
from proxy.ranking import Ranking, parse_ranking
from proxy.types import Chain, Scenario, Target

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
            close = closest(target.provider, providers)
            hint = f"; did you mean '{close}'?" if close else ""
            raise ConfigError(
                f"{key}[{i}]", f"unknown provider '{target.provider}' (known: {known}){hint}"
            )
        if not provider.serves(target.model):
            close = closest(target.model, provider.models)
            hint = f"; did you mean '{close}'?" if close else ""
            raise ConfigError(
                f"{key}[{i}]",
                f"model '{target.model}' is not served by provider '{provider.name}' "
                f"(its models: {', '.join(provider.models)}){hint}",
            )
    return chain


def _mapping_target(
    m: TableReader, providers: Mapping[str, ProviderConfig]
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
            raise ConfigError(
                m.key("candidates"),
                'only a ranked mapping has candidates (to = "@cheapest", "@fastest" or "@best")',
            )
        return _chain(text, m.key("to"), providers), None
    if candidates is not None:
        return _chain(candidates, m.key("candidates"), providers), ranking
    every = tuple(
        Target(p.name, model)
        for p in providers.values()
        for model in p.models
        if not GLOB_CHARS.intersection(model)
    )
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
        raise ConfigError(
            key,
            f"unknown route '{name}' (routes: {known}; or a chain 'provider,model|provider,model')",
        )
    return _chain(name, key, providers)


def _keyword_rules(
    t: TableReader,
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
            rule = compile_rule(name, phrases, chain, priority=priority, route=route, origin=k.path)
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


def parse_router(
    top: TableReader, providers: Mapping[str, ProviderConfig], base: Path | None = None
) -> RouterConfig:
    t = top.table("router", _ROUTER_KEYS, compat=("strategy",))
    if t is None:
        raise ConfigError("router", "required table is missing (it needs at least 'default')")
    t.string("strategy", None)
    routes: dict[Scenario, Chain] = {}
    for scenario in Scenario:
        text = t.string(scenario.value, MISSING if scenario is Scenario.DEFAULT else None)
        if text is not None:
            routes[scenario] = _chain(text, t.key(scenario.value), providers)
    pattern = t.string("background_model_pattern", "*haiku*", empty_ok=False)
    mappings: list[ModelMapping] = []
    for m in t.tables("model_mappings", _MAPPING_KEYS, compat=("bidirectional",)):
        m.boolean("bidirectional", None)
        source = m.string("from", empty_ok=False)
        regex = compile_glob_at(source, m.key("from"), ignore_case=True)
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
                timeouts=timeout_overrides(o.table("timeouts", tuple(TIMEOUT_KEYS))),
            )
    return RouterConfig(
        routes=MappingProxyType(routes),
        options=MappingProxyType(options),
        long_context_threshold=t.integer("long_context_threshold", 60000),
        background_model_pattern=pattern,
        background_regex=compile_glob_at(
            pattern, t.key("background_model_pattern"), ignore_case=True
        ),
        model_mappings=tuple(mappings),
        keyword_rules=_keyword_rules(t, routes, providers, base),
        taxonomy_dir=_taxonomy_path(t, base),
    )


def _taxonomy_path(t: TableReader, base: Path | None) -> Path | None:
    """`taxonomy_dir`, relative to the config file's directory (or the working directory)."""
    directory = t.data.get("taxonomy_dir")
    if not isinstance(directory, str):
        return None
    path = Path(directory).expanduser()
    return base / path if base is not None and not path.is_absolute() else path
