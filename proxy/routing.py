"""Pure routing: a request summary and the config in, a Decision (chain plus reason) out.

Phases, first hit wins for the head of the chain:
1. an explicit `provider,model` / `provider:model` in the model field;
2. the first model mapping whose glob matches;
3. nothing (the head is empty).
Scenario detection runs in every case and supplies the middle: the detected route's chain, then
`default`. So a think request walks the whole think chain before default (the reference jumped
straight to default after its first target).
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.config import Config, RouterConfig
from proxy.errors import RoutingError
from proxy.types import Chain, Decision, RequestSummary, Scenario, Target

# Background precedes think: Claude Code enables thinking on haiku requests too, and a client
# that picked the small fast model should not land on the expensive reasoning chain.
SCENARIO_PRECEDENCE: tuple[Scenario, ...] = (
    Scenario.IMAGE,
    Scenario.WEB_SEARCH,
    Scenario.LONG_CONTEXT,
    Scenario.BACKGROUND,
    Scenario.THINK,
)


def decide(summary: RequestSummary, config: Config) -> Decision:
    """Raises RoutingError for an explicit target naming an unknown provider or unserved model."""
    router = config.router
    head: Chain = ()
    why: list[str] = []
    mapping: str | None = None
    explicit = explicit_target(summary.model, config)
    if explicit is not None:
        head = (explicit,)
        why.append(f"model '{summary.model}' names target {explicit} explicitly")
    elif (m := router.mapping_for(summary.model)) is not None:
        head, mapping = m.to, m.pattern
        why.append(f"model '{summary.model}' matched mapping '{m.pattern}'")

    scenario, because = detect_scenario(summary, router)
    middle: Chain = ()
    if scenario is Scenario.DEFAULT:
        why.append("then default" if head else "no target, mapping or scenario -> default chain")
    else:
        middle = router.routes[scenario]
        why.append(f"{because} -> {scenario.value} chain; then default")
    return Decision(
        scenario=scenario,
        reason="; ".join(why),
        chain=_dedup((head, middle, router.default)),
        explicit=explicit is not None,
        mapping=mapping,
    )


def detect_scenario(summary: RequestSummary, router: RouterConfig) -> tuple[Scenario, str]:
    """The first configured scenario whose condition holds, and a phrase saying why."""
    for scenario in SCENARIO_PRECEDENCE:
        if scenario in router.routes and (because := _evidence(scenario, summary, router)):
            return scenario, because
    return Scenario.DEFAULT, ""


def _evidence(scenario: Scenario, s: RequestSummary, router: RouterConfig) -> str:
    """Why `s` belongs to `scenario`, or "" when it does not."""
    if scenario is Scenario.IMAGE:
        return "request contains images" if s.has_images else ""
    if scenario is Scenario.WEB_SEARCH:
        return "request has a web search tool" if s.has_web_search else ""
    if scenario is Scenario.LONG_CONTEXT:
        threshold = router.long_context_threshold
        if s.token_estimate >= threshold:
            return f"request is ~{s.token_estimate} tokens (>= {threshold})"
        return ""
    if scenario is Scenario.BACKGROUND:
        if router.is_background_model(s.model):
            return (
                f"model '{s.model}' matches background pattern '{router.background_model_pattern}'"
            )
        return ""
    if scenario is Scenario.THINK:
        return "request asks for reasoning" if s.wants_reasoning else ""
    return ""


def explicit_target(model: str, config: Config) -> Target | None:
    """The target a model field names, or None when it is a plain model name.

    A comma always means `provider,model` (split at the first comma, so `ollama,qwen:7b` works);
    a colon means one only when its prefix is a configured provider (`qwen2.5:7b` is a model).
    """
    if "," in model:
        provider_name, _, name = model.partition(",")
    elif ":" in model:
        provider_name, _, name = model.partition(":")
        if config.provider(provider_name.strip()) is None:
            return None
    else:
        return None
    provider_name, name = provider_name.strip(), name.strip()
    provider = config.provider(provider_name)
    if provider is None:
        known = ", ".join(config.provider_names)
        raise RoutingError(
            f"model '{model}' names provider '{provider_name}', which is not configured "
            f"(known: {known})"
        )
    if not name:
        raise RoutingError(f"model '{model}' names provider '{provider_name}' but no model")
    if not provider.serves(name):
        raise RoutingError(
            f"model '{name}' is not served by provider '{provider_name}' "
            f"(its models: {', '.join(provider.models)})"
        )
    return Target(provider_name, name)


def _dedup(chains: Iterable[Chain]) -> Chain:
    return tuple(dict.fromkeys(t for chain in chains for t in chain))
