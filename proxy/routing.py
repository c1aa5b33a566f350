"""Pure routing: a request summary and the config in, a Decision (chain plus reason) out.

Phases, first hit wins for the head of the chain:
1. an explicit `provider,model` / `provider:model` in the model field;
2. the first model mapping whose glob matches (a ranked mapping, `to = "@fastest"`, orders its
   candidates here, from prices and the live health view);
3. keyword rules over the last user text (`proxy.keywords`): every matching rule's chain, best
   rule first. Rules never override a model the client named or mapped: send a model no mapping
   matches (e.g. `auto`) to route by keywords, as with the reference proxy;
4. nothing (the head is empty).
Scenario detection runs in every case and supplies the middle: the detected route's chain, then
`default`. So a think request walks the whole think chain before default (the reference jumped
straight to default after its first target).

Capability filtering then removes the targets that cannot serve this request (too large for the
window, tools to a model without tool calls, images to a text-only model, a retired model) and
records each in `Decision.skipped`. When that would leave nothing, the chain is kept whole and
the findings go to `Decision.unfit` instead: the capability numbers are partly estimates, and a
provider's own refusal (e.g. a context-length error, which Claude Code answers by compacting) is
a more honest answer than a refusal built on our guess.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.capabilities import unfit_reason
from proxy.config import Config, ModelMapping, RouterConfig
from proxy.errors import RoutingError
from proxy.keywords import RuleMatch, match_rules
from proxy.ranking import HealthView, rank
from proxy.types import Chain, Decision, RequestSummary, Scenario, SkippedTarget, Target

# Background precedes think: Claude Code enables thinking on haiku requests too, and a client
# that picked the small fast model should not land on the expensive reasoning chain.
SCENARIO_PRECEDENCE: tuple[Scenario, ...] = (
    Scenario.IMAGE,
    Scenario.WEB_SEARCH,
    Scenario.LONG_CONTEXT,
    Scenario.BACKGROUND,
    Scenario.THINK,
)


def decide(summary: RequestSummary, config: Config, health: HealthView | None = None) -> Decision:
    """Raises RoutingError for an explicit target naming an unknown provider or unserved model.

    `health` is only read (ranked mappings order by live latency and success rate).
    """
    router = config.router
    head: Chain = ()
    why: list[str] = []
    mapping: str | None = None
    hits: tuple[RuleMatch, ...] = ()
    explicit = explicit_target(summary.model, config)
    if explicit is not None:
        head = (explicit,)
        why.append(f"model '{summary.model}' names target {explicit} explicitly")
    elif (m := router.mapping_for(summary.model)) is not None:
        head, mapping = _mapped(m, summary, config, health, why)
    elif hits := match_rules(router.keyword_rules, summary.last_user_text):
        head = _dedup(hit.rule.chain for hit in hits)
        why.append(_rules_phrase(hits))

    scenario, because = detect_scenario(summary, router)
    middle: Chain = ()
    if scenario is Scenario.DEFAULT:
        why.append("then default" if head else "no target, mapping or scenario -> default chain")
    else:
        middle = router.routes[scenario]
        why.append(f"{because} -> {scenario.value} chain; then default")
    route, route_targets = _route_of(
        explicit is not None, mapping, hits, scenario, head, middle, router.default
    )
    chain = _dedup((head, middle, router.default))
    kept, skipped = filter_chain(chain, summary, config)
    unfit: tuple[SkippedTarget, ...] = ()
    if not kept:
        kept, skipped, unfit = chain, (), skipped
        why.append("no target passes the capability checks: trying the whole chain")
    return Decision(
        scenario=scenario,
        reason="; ".join(why),
        chain=kept,
        explicit=explicit is not None,
        mapping=mapping,
        skipped=skipped,
        rule=_serving_rule(hits, kept),
        unfit=unfit,
        route=route,
        route_targets=route_targets,
    )


def _route_of(
    explicit: bool,
    mapping: str | None,
    hits: tuple[RuleMatch, ...],
    scenario: Scenario,
    head: Chain,
    middle: Chain,
    default: Chain,
) -> tuple[str, Chain]:
    """The route that decided the request and the targets it names itself: the head's source
    when there is a head, else the detected scenario, else default."""
    if explicit:
        return "explicit", head
    if mapping is not None:
        return f"mapping '{mapping}'", head
    if hits:
        return f"keyword rule '{hits[0].rule.name}'", head
    if scenario is not Scenario.DEFAULT:
        return scenario.value, middle
    return "default", default


def filter_chain(
    chain: Chain, summary: RequestSummary, config: Config
) -> tuple[Chain, tuple[SkippedTarget, ...]]:
    """The targets that can serve `summary`, and the others with the reason."""
    kept: list[Target] = []
    skipped: list[SkippedTarget] = []
    for target in chain:
        reason = unfit_reason(config.capabilities(target), summary)
        if reason is None:
            kept.append(target)
        else:
            skipped.append(SkippedTarget(target, reason))
    return tuple(kept), tuple(skipped)


def _mapped(
    m: ModelMapping,
    summary: RequestSummary,
    config: Config,
    health: HealthView | None,
    why: list[str],
) -> tuple[Chain, str]:
    if m.ranking is None:
        why.append(f"model '{summary.model}' matched mapping '{m.pattern}'")
        return m.to, m.pattern
    ordered, because = rank(m.to, m.ranking, config.capabilities, health)
    why.append(
        f"model '{summary.model}' matched mapping '{m.pattern}' ranked {m.ranking.value}: {because}"
    )
    return ordered, m.pattern


def _rules_phrase(hits: tuple[RuleMatch, ...]) -> str:
    best = hits[0]
    phrase = (
        f"keyword rule '{best.rule.name}' (priority {best.rule.priority}) matched '{best.text}'"
    )
    if len(hits) > 1:
        phrase += "; then rules " + ", ".join(f"'{h.rule.name}'" for h in hits[1:])
    return phrase


def _serving_rule(hits: tuple[RuleMatch, ...], chain: Chain) -> str | None:
    """The best matching rule that still has a target in the chain ("that can actually serve")."""
    walkable = set(chain)
    return next((h.rule.name for h in hits if walkable.intersection(h.rule.chain)), None)


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
