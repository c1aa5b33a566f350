from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import Config, load_config, parse_config
from proxy.errors import ClientRequestError, RoutingError
from proxy.frozen import to_dict
from proxy.routing import SCENARIO_PRECEDENCE, decide, explicit_target
from proxy.summary import summarize
from proxy.tokens import estimate_request_tokens
from proxy.types import ClientAPI, RequestSummary, Scenario, Target

DATA = Path(__file__).parent / "data"
ENV = {"PROXY_API_KEY": "p", "ZAI_API_KEY": "z", "CEREBRAS_API_KEY": "c", "MINIMAX_API_KEY": "m"}

CONFIG_TEXT = """
[router]
default = "zai,glm-5|cerebras,llama-3.3-70b"
think = "openai-codex,gpt-5.2|zai,glm-5|minimax,MiniMax-M2.5"
background = "cerebras,llama3.1-8b"
long_context = "openrouter,google/gemini-2.5-pro|zai,glm-5"
long_context_threshold = 50000
web_search = "openrouter,perplexity/sonar"
image = "openrouter,google/gemini-2.5-flash"

[[router.model_mappings]]
from = "thinking"
to = "openai-codex,gpt-5.2"
[[router.model_mappings]]
from = "cheap*"
to = "cerebras,llama3.1-8b"
[[router.model_mappings]]
from = "cheapest"
to = "zai,glm-4.7"
[[router.model_mappings]]
from = "claude-{opus,sonnet}-*"
to = "minimax,MiniMax-M2.5|zai,glm-5"

[[providers]]
name = "openai-codex"
api_base_url = "https://chatgpt.com/backend-api/codex"
models = ["gpt-5.2", "gpt-5.2-codex"]
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
models = ["glm-5", "glm-4.7"]
[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
models = ["llama-3.3-70b", "llama3.1-8b"]
[[providers]]
name = "minimax"
api_base_url = "https://api.minimax.io/anthropic"
models = ["MiniMax-M2.5"]
[[providers]]
name = "openrouter"
api_base_url = "https://openrouter.ai/api/v1"
models = ["*/*"]
[[providers]]
name = "ollama"
api_base_url = "http://127.0.0.1:11434/v1"
models = ["*"]
allow_private_network = true
"""

CODEX = Target("openai-codex", "gpt-5.2")
GLM5 = Target("zai", "glm-5")
L70 = Target("cerebras", "llama-3.3-70b")
L8 = Target("cerebras", "llama3.1-8b")
M25 = Target("minimax", "MiniMax-M2.5")
DEFAULT = (GLM5, L70)


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(CONFIG_TEXT, {})


@pytest.fixture(scope="module")
def deployment() -> Config:
    return load_config(DATA / "configs" / "reference-deployment.toml", ENV)


def capture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((DATA / "captures" / name).read_bytes())["body"]
    return body


# --- phases ------------------------------------------------------------------------------------


def test_plain_request_walks_default(config: Config) -> None:
    d = decide(RequestSummary(model="gpt-4o"), config)
    assert d.scenario is Scenario.DEFAULT
    assert d.chain == DEFAULT
    assert not d.explicit and d.mapping is None
    assert d.reason == "no target, mapping or scenario -> default chain"


def test_think_walks_whole_think_chain_then_default_without_duplicates(config: Config) -> None:
    d = decide(RequestSummary(model="gpt-4o", wants_reasoning=True), config)
    assert d.scenario is Scenario.THINK
    assert d.chain == (CODEX, GLM5, M25, L70)
    assert d.reason == "request asks for reasoning -> think chain; then default"


@pytest.mark.parametrize(
    ("model", "target"),
    [
        ("cerebras,llama3.1-8b", L8),
        ("cerebras:llama3.1-8b", L8),
        ("ollama,qwen2.5-coder:latest", Target("ollama", "qwen2.5-coder:latest")),
        ("ollama:qwen2.5-coder:latest", Target("ollama", "qwen2.5-coder:latest")),
        (
            "openrouter:meta-llama/llama-3.3-70b-instruct:free",
            Target("openrouter", "meta-llama/llama-3.3-70b-instruct:free"),
        ),
    ],
)
def test_explicit_target_heads_the_chain(config: Config, model: str, target: Target) -> None:
    d = decide(RequestSummary(model=model), config)
    assert d.explicit
    assert d.chain == (target, *DEFAULT)
    assert d.reason == f"model '{model}' names target {target} explicitly; then default"


def test_colon_without_a_provider_prefix_is_a_model_name(config: Config) -> None:
    assert explicit_target("qwen2.5:7b", config) is None
    d = decide(RequestSummary(model="qwen2.5:7b"), config)
    assert not d.explicit and d.chain == DEFAULT


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nope,glm-5", "names provider 'nope', which is not configured (known: openai-codex, zai"),
        ("zai,glm-9", "model 'glm-9' is not served by provider 'zai' (its models: glm-5, glm-4.7)"),
        ("zai:glm-9", "model 'glm-9' is not served by provider 'zai'"),
        ("openrouter,no-slash", "not served by provider 'openrouter'"),
        ("zai,", "names provider 'zai' but no model"),
    ],
)
def test_explicit_errors(config: Config, model: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decide(RequestSummary(model=model), config)


def test_explicit_target_still_gets_the_scenario_middle(config: Config) -> None:
    d = decide(RequestSummary(model="minimax,MiniMax-M2.5", wants_reasoning=True), config)
    assert d.scenario is Scenario.THINK
    assert d.chain == (M25, CODEX, GLM5, L70)


def test_mapping_first_match_wins_case_insensitively(config: Config) -> None:
    d = decide(RequestSummary(model="CHEAPEST"), config)
    assert d.mapping == "cheap*"
    assert d.chain == (L8, *DEFAULT)
    assert d.reason == "model 'CHEAPEST' matched mapping 'cheap*'; then default"


def test_mapping_to_a_chain_with_brace_glob(config: Config) -> None:
    d = decide(RequestSummary(model="claude-sonnet-4-5"), config)
    assert d.mapping == "claude-{opus,sonnet}-*"
    assert d.chain == (M25, GLM5, L70)


def test_mapping_then_think_then_default(config: Config) -> None:
    d = decide(RequestSummary(model="thinking", wants_reasoning=True), config)
    assert d.scenario is Scenario.THINK and d.mapping == "thinking"
    assert d.chain == (CODEX, GLM5, M25, L70)
    assert d.reason == (
        "model 'thinking' matched mapping 'thinking'; request asks for reasoning -> think chain; "
        "then default"
    )


def test_explicit_beats_mapping(config: Config) -> None:
    d = decide(RequestSummary(model="zai,glm-4.7"), config)
    assert d.explicit and d.mapping is None and d.chain[0] == Target("zai", "glm-4.7")


# --- scenario precedence -----------------------------------------------------------------------

ALL_SIGNALS = RequestSummary(
    model="claude-3-5-haiku",
    has_images=True,
    has_web_search=True,
    token_estimate=80000,
    wants_reasoning=True,
)


def test_scenario_precedence(config: Config) -> None:
    assert SCENARIO_PRECEDENCE == (
        Scenario.IMAGE,
        Scenario.WEB_SEARCH,
        Scenario.LONG_CONTEXT,
        Scenario.BACKGROUND,
        Scenario.THINK,
    )
    s = ALL_SIGNALS
    steps = [
        ({}, Scenario.IMAGE),
        ({"has_images": False}, Scenario.WEB_SEARCH),
        ({"has_web_search": False}, Scenario.LONG_CONTEXT),
        ({"token_estimate": 100}, Scenario.BACKGROUND),
        ({"model": "gpt-4o"}, Scenario.THINK),
        ({"wants_reasoning": False}, Scenario.DEFAULT),
    ]
    for change, expected in steps:
        s = RequestSummary(**{**_fields(s), **change})
        assert decide(s, config).scenario is expected, change


def _fields(s: RequestSummary) -> dict[str, Any]:
    return to_dict(s)


def test_chains_per_scenario(config: Config) -> None:
    gemini_pro = Target("openrouter", "google/gemini-2.5-pro")
    image = decide(ALL_SIGNALS, config)
    assert image.chain == (Target("openrouter", "google/gemini-2.5-flash"),)
    # glm-5 and llama-3.3-70b are text-only: capability filtering leaves them out
    assert tuple(s.target for s in image.skipped) == DEFAULT
    long = RequestSummary(model="x", token_estimate=50000)
    d = decide(long, config)
    assert d.chain == (gemini_pro, GLM5, L70)
    assert d.reason == "request is ~50000 tokens (>= 50000) -> long_context chain; then default"
    assert decide(RequestSummary(model="x", token_estimate=49999), config).chain == DEFAULT
    bg = decide(RequestSummary(model="Claude-3-5-Haiku"), config)
    assert bg.chain == (L8, *DEFAULT)
    assert bg.reason == (
        "model 'Claude-3-5-Haiku' matches background pattern '*haiku*' -> background chain; "
        "then default"
    )


def test_only_configured_scenarios_are_detected(deployment: Config) -> None:
    # the deployment has no image, web_search or long_context routes
    d = decide(ALL_SIGNALS, deployment)
    assert d.scenario is Scenario.BACKGROUND
    assert d.chain == (Target("openai-codex", "gpt-5.2-codex"),)
    assert tuple(s.target for s in d.skipped) == DEFAULT  # text-only, and the request has images


def test_custom_background_pattern() -> None:
    text = CONFIG_TEXT.replace(
        "long_context_threshold = 50000",
        'long_context_threshold = 50000\nbackground_model_pattern = "*-mini"',
    )
    config = parse_config(text, {})
    assert decide(RequestSummary(model="GPT-4o-MINI"), config).scenario is Scenario.BACKGROUND
    assert decide(RequestSummary(model="claude-haiku-4-5"), config).scenario is Scenario.DEFAULT


# --- the reference deployment with real client captures ----------------------------------------


def _route(deployment: Config, name: str, fmt: ClientAPI = ClientAPI.ANTHROPIC) -> Any:
    return decide(summarize(capture(name), fmt), deployment)


def test_haiku_capture_routes_to_background(deployment: Config) -> None:
    summary = summarize(
        capture("claude-code-2.1.197_print-mode_model-haiku.json"), ClientAPI.ANTHROPIC
    )
    assert summary.model == "claude-haiku-4-5-20251001"
    assert summary.wants_reasoning  # thinking enabled with a budget, yet still background
    d = decide(summary, deployment)
    assert d.scenario is Scenario.BACKGROUND
    assert d.chain == (Target("openai-codex", "gpt-5.2-codex"), GLM5, L70)


@pytest.mark.parametrize(
    "name",
    [
        "claude-code-2.1.197_print-mode_first-request.json",
        "claude-code-2.1.332_print-mode_first-request.json",
        "claude-code-2.1.197_print-mode_auth-token-custom-model.json",
        "claude-code-2.1.197_print-mode_tool-result-followup.json",
    ],
)
def test_adaptive_thinking_captures_route_to_think(deployment: Config, name: str) -> None:
    d = _route(deployment, name)
    assert d.scenario is Scenario.THINK
    assert d.chain == (CODEX, GLM5, M25, L70)


def test_title_generation_has_thinking_disabled_and_routes_to_default(deployment: Config) -> None:
    d = _route(deployment, "claude-code-2.1.197_interactive_title-generation.json")
    assert d.scenario is Scenario.DEFAULT and d.chain == DEFAULT


def test_mappings_of_the_deployment(deployment: Config) -> None:
    for model, head in [
        ("thinking", CODEX),
        ("cheapest", L8),
        ("fastest", L70),
    ]:
        d = decide(summarize({"model": model, "messages": []}, ClientAPI.OPENAI), deployment)
        assert d.chain[0] == head and d.mapping == model
    assert decide(RequestSummary(model="thinking"), deployment).chain == (CODEX, GLM5, L70)
    assert decide(RequestSummary(model="fastest"), deployment).chain == (L70, GLM5)


# --- summaries ---------------------------------------------------------------------------------


def test_summary_of_claude_code_captures() -> None:
    first = summarize(
        capture("claude-code-2.1.197_print-mode_first-request.json"), ClientAPI.ANTHROPIC
    )
    assert first.model == "claude-opus-4-8"
    assert first.has_tools and not first.has_images
    assert not first.has_web_search  # its WebSearch tool is a client tool, not a search request
    assert first.wants_reasoning
    assert first.max_output_tokens == 64000
    assert first.last_user_text.endswith("Say hi")
    followup = summarize(
        capture("claude-code-2.1.197_print-mode_tool-result-followup.json"), ClientAPI.ANTHROPIC
    )
    assert followup.last_user_text == ""  # the last user turn carries only a tool_result
    title = summarize(
        capture("claude-code-2.1.197_interactive_title-generation.json"), ClientAPI.ANTHROPIC
    )
    assert not title.wants_reasoning and not title.has_tools


def test_summary_of_python_client_captures() -> None:
    requests = orjson.loads((DATA / "captures" / "python-clients_requests.json").read_bytes())
    by_path = {
        "/v1/chat/completions": ClientAPI.OPENAI,
        "/v1/messages": ClientAPI.ANTHROPIC,
        "/v1/messages/count_tokens": ClientAPI.ANTHROPIC,
        "/v1/responses": ClientAPI.RESPONSES,
    }
    summaries = [summarize(r["body"], by_path[r["path"]]) for r in requests["requests"]]
    assert [s.last_user_text for s in summaries] == [
        "hi",
        "CALL_TOOL",
        "hi",
        "CALL_TOOL",
        "hi",
        "hi",
        "CALL_TOOL",
        "hi",
    ]
    assert [s.has_tools for s in summaries] == [False, True, False, True, True, False, True, False]
    assert summaries[3].max_output_tokens == 100
    assert not any(s.wants_reasoning or s.has_images or s.has_web_search for s in summaries)


def test_summary_of_codex_capture() -> None:
    body = capture("codex-0.169.0_exec_first-request.json")
    s = summarize(body, ClientAPI.RESPONSES)
    assert s.model == "gpt-5.1-codex"
    assert s.last_user_text == "Say hi"
    # `reasoning: {summary: auto}` and the always-declared hosted web_search tool are on every
    # Codex request: neither says this request wants the think or web_search route
    assert not s.wants_reasoning
    assert not s.has_web_search
    forced = {**body, "tool_choice": {"type": "web_search"}, "reasoning": {"effort": "high"}}
    assert summarize(forced, ClientAPI.RESPONSES).has_web_search
    assert summarize(forced, ClientAPI.RESPONSES).wants_reasoning
    assert s.token_estimate == estimate_request_tokens(body, ClientAPI.RESPONSES)


def test_token_estimate_comes_from_tokens_module() -> None:
    body = capture("claude-code-2.1.197_print-mode_first-request.json")
    assert summarize(body, ClientAPI.ANTHROPIC).token_estimate == estimate_request_tokens(
        body, ClientAPI.ANTHROPIC
    )


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (
            {
                "model": "m",
                "messages": [
                    _user(
                        [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {
                                        "type": "image",
                                        "source": {
                                            "type": "base64",
                                            "media_type": "image/png",
                                            "data": "x",
                                        },
                                    }
                                ],
                            }
                        ]
                    )
                ],
            },
            ClientAPI.ANTHROPIC,
        ),
        (
            {"model": "m", "messages": [_user([{"type": "image_url", "image_url": {"url": "u"}}])]},
            ClientAPI.OPENAI,
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            ClientAPI.RESPONSES,
        ),
    ],
)
def test_images_anywhere(body: dict[str, Any], fmt: ClientAPI) -> None:
    assert summarize(body, fmt).has_images


@pytest.mark.parametrize(
    ("extra", "fmt", "expected"),
    [
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            ClientAPI.ANTHROPIC,
            True,
        ),
        ({"tools": [{"name": "brave_web_search", "input_schema": {}}]}, ClientAPI.ANTHROPIC, True),
        ({"tools": [{"name": "WebSearch", "input_schema": {}}]}, ClientAPI.ANTHROPIC, False),
        (
            {"tools": [{"type": "function", "function": {"name": "google_search"}}]},
            ClientAPI.OPENAI,
            True,
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "get_weather"}}]},
            ClientAPI.OPENAI,
            False,
        ),
        ({"web_search_options": {}}, ClientAPI.OPENAI, True),
        ({"tools": [{"type": "web_search_preview"}]}, ClientAPI.RESPONSES, False),
        ({"tool_choice": {"type": "web_search_preview"}}, ClientAPI.RESPONSES, True),
        ({"tools": ["junk", None]}, ClientAPI.OPENAI, False),
    ],
)
def test_web_search_detection(extra: dict[str, Any], fmt: ClientAPI, expected: bool) -> None:
    assert summarize({"model": "m", "messages": [], **extra}, fmt).has_web_search is expected


@pytest.mark.parametrize(
    ("extra", "fmt", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, ClientAPI.ANTHROPIC, True),
        ({"thinking": {"type": "adaptive"}}, ClientAPI.ANTHROPIC, True),
        ({"thinking": {"type": "disabled"}}, ClientAPI.ANTHROPIC, False),
        ({"thinking": "yes"}, ClientAPI.ANTHROPIC, False),
        ({"reasoning_effort": "high"}, ClientAPI.OPENAI, True),
        ({"reasoning_effort": "low"}, ClientAPI.OPENAI, True),
        ({"reasoning_effort": "minimal"}, ClientAPI.OPENAI, False),
        ({"reasoning_effort": "none"}, ClientAPI.OPENAI, False),
        ({"reasoning": {"effort": "medium"}}, ClientAPI.OPENAI, True),
        ({"reasoning": {"enabled": False}}, ClientAPI.OPENAI, False),
        ({"reasoning": {"effort": "none"}}, ClientAPI.RESPONSES, False),
        ({}, ClientAPI.OPENAI, False),
    ],
)
def test_reasoning_detection(extra: dict[str, Any], fmt: ClientAPI, expected: bool) -> None:
    assert summarize({"model": "m", "messages": [], **extra}, fmt).wants_reasoning is expected


@pytest.mark.parametrize(
    ("extra", "fmt", "expected"),
    [
        ({"max_tokens": 10, "max_completion_tokens": 20}, ClientAPI.OPENAI, 20),
        ({"max_tokens": 10}, ClientAPI.OPENAI, 10),
        ({"max_tokens": 10}, ClientAPI.ANTHROPIC, 10),
        ({"max_output_tokens": 30}, ClientAPI.RESPONSES, 30),
        ({"max_tokens": True}, ClientAPI.ANTHROPIC, None),
        ({"max_tokens": "10"}, ClientAPI.ANTHROPIC, None),
    ],
)
def test_max_output_tokens(extra: dict[str, Any], fmt: ClientAPI, expected: int | None) -> None:
    assert summarize({"model": "m", "messages": [], **extra}, fmt).max_output_tokens == expected


@pytest.mark.parametrize("fmt", [ClientAPI.OPENAI, ClientAPI.ANTHROPIC])
def test_odd_but_valid_shapes_do_not_crash(fmt: ClientAPI) -> None:
    body = {
        "model": "m",
        "messages": [
            _user("first"),
            {"role": "assistant", "content": None, "tool_calls": []},
            "not a message",
            {"role": "user"},
            _user(
                [
                    None,
                    "x",
                    {"type": "text"},
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b"},
                ]
            ),
        ],
        "tools": None,
    }
    s = summarize(body, fmt)
    assert s.last_user_text == "a\nb"
    assert not s.has_tools and not s.has_images
    assert summarize({"model": "m", "messages": "nope"}, fmt).last_user_text == ""
    assert summarize({"model": "m"}, fmt).last_user_text == ""


@pytest.mark.parametrize("body", [{"messages": []}, {"model": 3}, {"model": ""}, []])
def test_unroutable_body_is_a_client_error(body: Any) -> None:
    with pytest.raises(ClientRequestError):
        summarize(body, ClientAPI.OPENAI)
