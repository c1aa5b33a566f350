"""Keyword rules: whole words and phrases with priorities, configured in TOML or loaded from the
reference proxy's markdown taxonomy files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import orjson
import pytest

from proxy.config import Config, load_config, parse_config
from proxy.errors import ConfigError
from proxy.keywords import KeywordRule, compile_rule, match_rules, parse_taxonomy, read_taxonomy
from proxy.routing import decide
from proxy.types import RequestSummary, Scenario, Target

TAXONOMY = Path(__file__).parent / "data" / "taxonomy"
GLM5 = Target("zai", "glm-5")
CODEX = Target("openai-codex", "gpt-5.2")
M25 = Target("minimax", "MiniMax-M2.5")
L8 = Target("cerebras", "llama3.1-8b")

PROVIDERS = """
[[providers]]
name = "openai-codex"
api_base_url = "https://chatgpt.com/backend-api/codex"
models = ["gpt-5.2"]
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
models = ["glm-5"]
[[providers]]
name = "minimax"
api_base_url = "https://api.minimax.io/anthropic"
models = ["MiniMax-M2.5"]
[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
models = ["llama3.1-8b"]
"""


def rule(*phrases: str, priority: int = 50, name: str = "r") -> KeywordRule:
    return compile_rule(name, phrases, (GLM5,), priority=priority)


def names(rules: list[KeywordRule], text: str) -> list[str]:
    return [m.rule.name for m in match_rules(rules, text)]


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "text", "hit"),
    [
        ("reason", "that seems reasonable", False),
        ("reason", "give me the reason.", True),
        ("reason", "REASON about it", True),
        ("think", "let me rethink this", False),
        ("think", "(think) first", True),
        ("plan", "plan_implementation", False),  # `_` is a word character
        ("plan", "airplane", False),
        ("step by step", "go step-by-step", True),
        ("step by step", "go step\n  by step", True),
        ("step by step", "go stepby step", False),
        ("chain-of-thought", "use chain of thought here", True),
        ("c++", "write it in c++ please", True),
        ("c++", "c++11 features", False),
        ("überlegen", "Bitte ÜBERLEGEN Sie", True),
        ("überlegen", "Überlegenheit", False),
        ("подумай", "Подумай хорошо", True),
        ("подумай", "подумайте", False),
        ("思考", "请深度思考这个问题", True),  # no spaces between words: substring at the edges
        ("gpt", "gpt5", False),
    ],
)
def test_whole_words_and_phrases(phrase: str, text: str, hit: bool) -> None:
    assert bool(names([rule(phrase)], text)) is hit


def test_priority_then_specificity_then_config_order() -> None:
    low = rule("think", priority=10, name="low")
    high = rule("think", priority=90, name="high")
    assert names([low, high], "think about it") == ["high", "low"]
    short = rule("step", name="short")
    long = rule("step by step", name="long")
    assert names([short, long], "go step by step") == ["long", "short"]
    first, second = rule("a b", name="first"), rule("b a", name="second")
    assert names([second, first], "a b a") == ["second", "first"]


def test_system_reminders_are_not_the_users_words() -> None:
    think = rule("plan", name="plan")
    text = "<system-reminder>\nPlan mode is active.\n</system-reminder>\nfix the typo"
    assert names([think], text) == []
    assert names([think], text + " and plan the release") == ["plan"]


def test_empty_phrase_is_refused() -> None:
    with pytest.raises(ValueError, match="no words"):
        compile_rule("r", [" - "], (GLM5,))
    with pytest.raises(ValueError, match="at least one phrase"):
        compile_rule("r", [], (GLM5,))


# --- TOML rules --------------------------------------------------------------------------------

RULES = """
[router]
default = "zai,glm-5"
think = "openai-codex,gpt-5.2|minimax,MiniMax-M2.5"

[[router.keyword_rules]]
name = "deep"
phrases = ["think hard", "reason", "step by step"]
route = "think"
priority = 80

[[router.keyword_rules]]
name = "tiny"
phrases = ["quick question", "reason"]
route = "cerebras,llama3.1-8b"
priority = 90
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(RULES + PROVIDERS, {})


def test_rules_from_toml(config: Config) -> None:
    deep, tiny = config.router.keyword_rules
    assert (deep.name, deep.chain, deep.priority, deep.route) == ("deep", (CODEX, M25), 80, "think")
    assert (tiny.chain, tiny.origin) == ((L8,), "router.keyword_rules[1]")


def test_best_rule_heads_the_chain_then_the_next(config: Config) -> None:
    d = decide(RequestSummary("auto", last_user_text="Please reason step by step"), config)
    assert d.rule == "tiny"  # priority 90 beats 80
    assert d.chain == (L8, CODEX, M25, GLM5)
    assert d.reason.startswith(
        "keyword rule 'tiny' (priority 90) matched 'reason'; then rules 'deep'"
    )
    d = decide(RequestSummary("auto", last_user_text="that is reasonable"), config)
    assert d.rule is None and d.chain == (GLM5,)


def test_the_best_rule_that_can_serve_wins(config: Config) -> None:
    """`tiny` matches first but its 8k model cannot take a 20k-token request: `deep` serves."""
    big = RequestSummary(
        "auto", last_user_text="reason", token_estimate=20_000, max_output_tokens=4096
    )
    d = decide(big, config)
    assert d.rule == "deep"
    assert d.chain == (CODEX, M25, GLM5)
    assert [s.target for s in d.skipped] == [L8]


def test_named_models_and_mappings_bypass_keyword_rules(config: Config) -> None:
    d = decide(RequestSummary("zai,glm-5", last_user_text="reason"), config)
    assert d.rule is None and d.chain == (GLM5,)
    mapping = '[[router.model_mappings]]\nfrom = "claude-*"\nto = "zai,glm-5"\n'
    mapped = parse_config(RULES + mapping + PROVIDERS, {})
    d = decide(RequestSummary("claude-sonnet-4-5", last_user_text="reason"), mapped)
    assert (d.rule, d.mapping, d.chain) == (None, "claude-*", (GLM5,))
    assert decide(RequestSummary("auto", last_user_text="reason"), mapped).rule == "tiny"


def test_keyword_rule_then_scenario_chain(config: Config) -> None:
    summary = RequestSummary("auto", last_user_text="quick question", wants_reasoning=True)
    d = decide(summary, config)
    assert d.scenario is Scenario.THINK
    assert d.chain == (L8, CODEX, M25, GLM5)


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (
            ('route = "think"', 'route = "thinking"'),
            "router.keyword_rules[0].route",
            "unknown route 'thinking'",
        ),
        (
            ('route = "think"', 'route = "image"'),
            "router.keyword_rules[0].route",
            "route 'image' is not set",
        ),
        (
            ('route = "think"', 'route = "zai,glm-6"'),
            "router.keyword_rules[0].route[0]",
            "did you mean 'glm-5'",
        ),
        (
            ("priority = 80", "priority = 101"),
            "router.keyword_rules[0].priority",
            "between 0 and 100",
        ),
        (
            ('phrases = ["think hard", "reason", "step by step"]', "phrases = []"),
            "router.keyword_rules[0].phrases",
            "at least one phrase",
        ),
        (
            ('phrases = ["think hard", "reason", "step by step"]', 'phrases = "reason"'),
            "router.keyword_rules[0].phrases",
            "expected array of strings",
        ),
        (('name = "tiny"', 'name = "deep"'), "router.keyword_rules[1].name", "duplicate rule"),
        (
            ('name = "tiny"', 'name = "tiny"\nlong_context_threshold = 5'),
            "router.keyword_rules[1].long_context_threshold",
            "move 'long_context_threshold' above",
        ),
        (
            ('name = "tiny"', 'name = "tiny"\nphrase = ["x"]'),
            "router.keyword_rules[1].phrase",
            "did you mean 'phrases'",
        ),
    ],
)
def test_bad_rules_name_their_key(change: tuple[str, str], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(RULES.replace(*change, 1) + PROVIDERS, {})
    assert info.value.key == key
    assert message in info.value.message


# --- taxonomy files ----------------------------------------------------------------------------

TAXONOMY_ROUTER = """
[router]
default = "zai,glm-5"
web_search = "zai,glm-5|minimax,MiniMax-M2.5"
taxonomy_dir = "{path}"
"""


def taxonomy_config(path: Path | str) -> Config:
    return parse_config(TAXONOMY_ROUTER.format(path=path) + PROVIDERS, {})


def test_reference_taxonomy_files_load(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llmproxy.keywords"):
        config = taxonomy_config(TAXONOMY)
    rules = {r.name: r for r in config.router.keyword_rules}
    assert set(rules) == {"minimax_keyword_routing", "think_routing", "web_search_routing"}
    think = rules["think_routing"]
    assert think.chain == (CODEX,) and think.priority == 80
    assert "chain-of-thought" in think.phrases and "plan mode" in think.phrases  # continued lines
    assert rules["minimax_keyword_routing"].chain == (M25,)  # `MiniMax` matches `minimax`
    assert rules["web_search_routing"].chain == (GLM5, M25)  # named after a configured route
    assert config.router.taxonomy_dir == TAXONOMY
    logged = caplog.text
    assert (
        "low_cost_routing.md: route 'openrouter, deepseek/deepseek-v3.1-terminus' skipped: "
        "provider 'openrouter' is not configured" in logged
    )
    assert "background_routing.md: no route:: line" in logged


def test_taxonomy_routes_by_priority_and_whole_words() -> None:
    config = taxonomy_config(TAXONOMY)
    d = decide(RequestSummary("auto", last_user_text="think about minimax m2.5"), config)
    assert d.rule == "minimax_keyword_routing"  # priority 100 over think's 80
    assert d.chain == (M25, CODEX, GLM5)
    d = decide(RequestSummary("auto", last_user_text="a reasonable, well-planned answer"), config)
    assert d.rule is None  # neither "reason" nor "plan" as whole words


def test_taxonomy_dir_may_point_at_routing_scenarios_or_be_relative(tmp_path: Path) -> None:
    direct = taxonomy_config(TAXONOMY / "routing_scenarios")
    assert len(direct.router.keyword_rules) == 3  # the reference found 0 files here
    shutil.copytree(TAXONOMY, tmp_path / "taxonomy")
    path = tmp_path / "config.toml"
    path.write_text(TAXONOMY_ROUTER.format(path="taxonomy") + PROVIDERS)
    assert len(load_config(path, {}).router.keyword_rules) == 3


def test_taxonomy_parse_details(tmp_path: Path) -> None:
    entry = parse_taxonomy(
        "Intro\n# First Heading\n# Second\n- `route:: zai, glm-5`\nrouting:: x, y\n"
        "Synonyms:: One, Two,\n  three\nnext line\nsynonyms:: two, four\n",
        tmp_path / "x.md",
    )
    assert entry.name == "first_heading"
    assert entry.route == "zai, glm-5"  # the first route line wins
    assert entry.synonyms == ("one", "two", "three", "four")
    assert entry.priority == 50
    nameless = parse_taxonomy("synonyms:: a\n", tmp_path / "Low Cost.md")
    assert nameless.name == "low_cost"


def test_bad_taxonomy_priority_and_missing_dir_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_text("# Bad\nsynonyms:: x\npriority:: high\n")
    with pytest.raises(ConfigError) as info:
        read_taxonomy(tmp_path)
    assert info.value.key == f"{tmp_path / 'bad.md'}:3"
    with pytest.raises(ConfigError) as info:
        taxonomy_config(tmp_path / "missing")
    assert info.value.key == "router.taxonomy_dir"


# --- `llmproxy route test` -----------------------------------------------------------------------


def test_route_test_shows_the_rule_and_the_skipped_targets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    path = tmp_path / "config.toml"
    path.write_text(RULES + PROVIDERS)
    runner = CliRunner(env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    args = [
        "route",
        "test",
        "auto",
        "--prompt",
        "reason about it",
        "--tokens",
        "12000",
        "-c",
        str(path),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    decision = orjson.loads(result.stdout)
    assert decision["rule"] == "deep"
    assert decision["chain"] == ["openai-codex,gpt-5.2", "minimax,MiniMax-M2.5", "zai,glm-5"]
    assert decision["skipped"][0]["target"] == "cerebras,llama3.1-8b"
    assert decision["capabilities"]["cerebras,llama3.1-8b"]["context_window"] == 8192
    text = runner.invoke(app, args).stdout
    assert "rule      deep" in text
    assert "skipped cerebras,llama3.1-8b: too large" in text
    assert "1. openai-codex,gpt-5.2  (400k window" in text
