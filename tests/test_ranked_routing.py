"""Ranked aliases: `to = "@cheapest" | "@fastest" | "@best"` orders a mapping's candidates by
price and by live latency and reliability, then the result is walked as a normal chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.appkeys import HEALTH
from proxy.config import Config, parse_config
from proxy.errors import ConfigError
from proxy.health import BreakerState, HealthRegistry, TargetStatus
from proxy.ranking import Ranking
from proxy.routing import decide
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import ErrorClass, RequestSummary, Target

StartDaemon = Callable[[str], Awaitable[Daemon]]
L8 = Target("cerebras", "llama3.1-8b")
L70 = Target("cerebras", "llama-3.3-70b")
GLM5 = Target("zai", "glm-5")
SONNET = Target("anthropic", "claude-sonnet-4-5")

CONFIG = """
[router]
default = "zai,glm-5"

[[router.model_mappings]]
from = "cheapest"
to = "@cheapest"
candidates = "anthropic,claude-sonnet-4-5|zai,glm-5|cerebras,llama3.1-8b"
[[router.model_mappings]]
from = "fastest"
to = "@Fastest"
candidates = "cerebras,llama-3.3-70b|zai,glm-5"
[[router.model_mappings]]
from = "best"
to = "@best"

[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
models = ["glm-5"]
[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
models = ["llama3.1-8b", "llama-3.3-70b", "llama-*"]
[[providers]]
name = "anthropic"
api_base_url = "https://api.anthropic.com"
models = ["claude-sonnet-4-5"]
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(CONFIG, {})


class FakeHealth:
    """A read-only health view with fixed figures."""

    def __init__(self, **figures: tuple[int, float | None, float | None]) -> None:
        # target string -> (requests, success_rate, latency_ms)
        self.figures = figures

    def status(self, target: Target) -> TargetStatus:
        requests, rate, latency = self.figures.get(str(target), (0, None, None))
        return TargetStatus(target, BreakerState.CLOSED, 0.0, "", requests, rate, latency, None)


# --- config ------------------------------------------------------------------------------------


def test_ranked_mappings_parse(config: Config) -> None:
    cheapest, fastest, best = config.router.model_mappings
    assert cheapest.ranking is Ranking.CHEAPEST and cheapest.to == (SONNET, GLM5, L8)
    assert fastest.ranking is Ranking.FASTEST and fastest.to == (L70, GLM5)
    # without candidates: every exact model id of every provider, in config order
    assert best.ranking is Ranking.BEST and best.to == (GLM5, L8, L70, SONNET)


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (
            ('to = "@cheapest"', 'to = "@quickest"'),
            "router.model_mappings[0].to",
            "unknown ranking '@quickest' (known: @cheapest, @fastest, @best)",
        ),
        (
            ('to = "@best"', 'to = "zai,glm-5"\ncandidates = "zai,glm-5"'),
            "router.model_mappings[2].candidates",
            "only a ranked mapping has candidates",
        ),
        (
            ('candidates = "cerebras,llama-3.3-70b|zai,glm-5"', 'candidates = "zai,glm-6"'),
            "router.model_mappings[1].candidates[0]",
            "did you mean 'glm-5'",
        ),
        (
            ('candidates = "cerebras,llama-3.3-70b|zai,glm-5"', 'candidates = ""'),
            "router.model_mappings[1].candidates",
            "must not be empty",
        ),
    ],
)
def test_bad_ranked_mappings_name_their_key(
    change: tuple[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.replace(*change, 1), {})
    assert info.value.key == key
    assert message in info.value.message


# --- ranking, pure -----------------------------------------------------------------------------


def test_cheapest_orders_by_blended_price(config: Config) -> None:
    d = decide(RequestSummary("cheapest"), config)
    assert d.chain == (L8, GLM5, SONNET)  # $0.10, $1.55, $6.00 per M blended
    assert d.mapping == "cheapest"
    assert "ranked @cheapest: cerebras,llama3.1-8b ($0.10/M blended)" in d.reason


def test_cheapest_puts_unknown_prices_last_and_breaks_ties_by_speed() -> None:
    text = CONFIG.replace(
        'models = ["glm-5"]',
        'models = ["glm-5"]\n[providers.capabilities."glm-5"]\nprice_in = 0.1\nprice_out = 0.1',
    )
    text = text.replace('"anthropic,claude-sonnet-4-5|', '"cerebras,llama-mystery|')
    config = parse_config(text, {})
    assert decide(RequestSummary("cheapest"), config).chain == (
        GLM5,
        L8,
        Target("cerebras", "llama-mystery"),
    )
    health = FakeHealth(**{"zai,glm-5": (5, 1.0, 900.0), "cerebras,llama3.1-8b": (5, 1.0, 80.0)})
    assert decide(RequestSummary("cheapest"), config, health).chain[:2] == (L8, GLM5)


def test_fastest_tries_untried_first_then_measured_then_failing(config: Config) -> None:
    assert decide(RequestSummary("fastest"), config).chain == (L70, GLM5)  # no health view
    health = FakeHealth(**{"cerebras,llama-3.3-70b": (3, 1.0, 400.0)})
    assert decide(RequestSummary("fastest"), config, health).chain == (GLM5, L70)  # measure glm
    health = FakeHealth(**{"cerebras,llama-3.3-70b": (3, 1.0, 400.0), "zai,glm-5": (3, 1.0, 900.0)})
    d = decide(RequestSummary("fastest"), config, health)
    assert d.chain == (L70, GLM5)
    assert "cerebras,llama-3.3-70b (400 ms), zai,glm-5 (900 ms)" in d.reason
    failing = FakeHealth(**{"cerebras,llama-3.3-70b": (3, 0.0, None), "zai,glm-5": (3, 1.0, 900.0)})
    assert decide(RequestSummary("fastest"), config, failing).chain == (GLM5, L70)


def test_best_prefers_reliable_targets(config: Config) -> None:
    health = FakeHealth(**{"zai,glm-5": (10, 0.5, 100.0), "cerebras,llama3.1-8b": (10, 1.0, 300.0)})
    chain = decide(RequestSummary("best"), config, health).chain
    assert chain.index(L8) < chain.index(GLM5)
    assert chain[0] == L70  # untried counts as reliable; ties go to the faster


def test_ordering_follows_a_real_registry_as_latency_changes(config: Config) -> None:
    now = [0.0]
    health = HealthRegistry(clock=lambda: now[0])
    health.record_success(L70, 300.0)
    health.record_success(GLM5, 800.0)
    assert decide(RequestSummary("fastest"), config, health).chain == (L70, GLM5)
    for _ in range(2):
        health.record_success(L70, 1500.0)
    assert decide(RequestSummary("fastest"), config, health).chain == (GLM5, L70)
    health.record_failure(GLM5, ErrorClass.SERVER_ERROR)
    assert decide(RequestSummary("best"), config, health).chain.index(GLM5) > 0


# --- through the daemon ------------------------------------------------------------------------


def two_speeds() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("slow", "openai", ["model-s"], first_token_delay=0.15),
        SimulatedProvider("quick", "openai", ["model-q"]),
        SimulatedProvider("dear", "openai", ["model-d"]),
    ]


SAME_PRICE = '[providers.capabilities."{model}"]\nprice_in = 1.0\nprice_out = 2.0\n'
MAPPINGS = """
[[router.model_mappings]]
from = "fastest"
to = "@fastest"
candidates = "slow,model-s|quick,model-q"
[[router.model_mappings]]
from = "cheapest"
to = "@cheapest"
candidates = "dear,model-d|slow,model-s|quick,model-q"
"""


def ranked_config(sims: dict[str, SimulatedProvider]) -> str:
    text = config_text(
        sims,
        {"default": "slow,model-s"},
        provider_extra={
            "slow": SAME_PRICE.format(model="model-s"),
            "quick": SAME_PRICE.format(model="model-q"),
            "dear": '[providers.capabilities."model-d"]\nprice_in = 9.0\nprice_out = 9.0\n',
        },
    )
    return text.replace("[[providers]]", MAPPINGS + "[[providers]]", 1)


async def send(client: openai.AsyncOpenAI, model: str) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hi"}]
    )
    raw.parse()
    return raw.headers["x-llmproxy-provider"]


async def test_cheapest_and_fastest_follow_latency_measured_on_real_traffic(
    clients: Clients, daemon: StartDaemon
) -> None:
    """Latency recorded by the daemon from real requests reorders @fastest, and breaks
    @cheapest's price tie; the dearer target stays last whatever its speed."""
    async with run_simulated(two_speeds()) as sims:
        proxy = await daemon(ranked_config(sims))
        client = clients.openai(proxy)
        health = proxy.server.app[HEALTH]
        for target in ("slow,model-s", "quick,model-q", "dear,model-d"):
            await send(client, target)

        def order(alias: str) -> tuple[str, ...]:
            decision = decide(RequestSummary(alias), proxy.config, health)
            return tuple(t.provider for t in decision.chain)

        assert order("fastest") == ("quick", "slow")
        assert order("cheapest") == ("quick", "slow", "dear")

        sims["slow"].first_token_delay, sims["quick"].first_token_delay = 0.0, 0.3
        for _ in range(2):
            await send(client, "slow,model-s")
            await send(client, "quick,model-q")
        assert order("fastest") == ("slow", "quick")
        assert order("cheapest") == ("slow", "quick", "dear")


async def test_fastest_alias_is_served_by_the_measured_fastest(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(two_speeds()) as sims:
        client = clients.openai(await daemon(ranked_config(sims)))
        # untried targets go first, so two requests measure both
        assert [await send(client, "fastest") for _ in range(2)] == ["slow", "quick"]
        assert await send(client, "fastest") == "quick"
        sims["slow"].first_token_delay, sims["quick"].first_token_delay = 0.0, 0.3
        served = [await send(client, "fastest") for _ in range(4)]
        assert served[-1] == "slow"  # once quick's median is the slower one
