"""Model capabilities: the built-in table, config overrides, the provider catalog, the checks
routing makes with them, max_tokens clamping, and capability filtering through the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import Clients
from support import CLIENT_KEY, Daemon, config_text, local_client
from typer import Typer
from typer.testing import CliRunner

from cli.providers_refresh import providers_refresh
from proxy.capabilities import (
    UNKNOWN,
    ModelCapabilities,
    builtin_capabilities,
    clamp_max_tokens,
    output_cap,
    unfit_reason,
)
from proxy.config import Config, parse_config
from proxy.errors import ConfigError
from proxy.model_catalog import CACHE_FILE, load_catalog, parse_model_list, refresh_catalog
from proxy.routing import decide
from proxy.simulate import (
    FaultPlan,
    SimulatedProvider,
    SimulatorThread,
    model_not_found,
    run_simulated,
)
from proxy.types import ProviderFormat, RequestSummary, Target

StartDaemon = Callable[[str], Awaitable[Daemon]]
CATALOG_DATA = Path(__file__).parent / "data" / "catalog"
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

BASE = """
[router]
default = "cerebras,llama3.1-8b|zai,glm-5"

[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
models = ["glm-5", "glm-4.7"]

[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
models = ["llama3.1-8b", "llama-*"]
"""


def parse(extra: str = "") -> Config:
    return parse_config(BASE + extra, {})


# --- the built-in table ------------------------------------------------------------------------


def test_builtin_table_knows_the_models_that_hurt_the_reference() -> None:
    small = builtin_capabilities("llama3.1-8b")
    assert small.context_window == 8192 and small.approximate
    assert small.source == "builtin:llama3.1-8b"
    glm = builtin_capabilities("glm-5")
    assert glm.vision is False and glm.tools is True and glm.reasoning_field == "reasoning_content"
    claude = builtin_capabilities("claude-sonnet-4-5-20250929")
    assert (claude.vision, claude.tools, claude.reasoning_field) == (True, True, "thinking")
    assert (claude.price_in, claude.price_out) == (3.0, 15.0)
    assert builtin_capabilities("gpt-5.2-codex").reasoning_field == "reasoning"
    assert builtin_capabilities("MiniMax-M2.5").context_window == 204_800  # case-insensitive


def test_builtin_lookup_uses_the_last_path_segment_and_knows_what_it_does_not_know() -> None:
    assert builtin_capabilities("anthropic/claude-sonnet-4.5").source == "builtin:claude-sonnet-4*"
    assert builtin_capabilities("glm-4.6v").vision is True
    assert builtin_capabilities("totally-new-model") == UNKNOWN
    assert builtin_capabilities("claude-opus-4-1").price_in == 15.0  # before the opus-4* family


# --- config overrides --------------------------------------------------------------------------


def test_overrides_per_provider_exact_before_glob_then_builtin() -> None:
    config = parse("""
[providers.capabilities."llama*"]
context_window = 65536
price_in = 0.5
[providers.capabilities."llama3.1-8b"]
context_window = 32768
tools = false
""")
    small = config.capabilities(Target("cerebras", "llama3.1-8b"))
    assert small.context_window == 32768  # the exact key wins over the glob
    assert small.tools is False and small.price_in == 0.5  # the glob fills what exact left open
    assert small.price_out == 0.1  # the built-in table fills the rest
    assert small.source.startswith("config+config+builtin")
    big = config.capabilities(Target("cerebras", "llama-3.3-70b"))
    assert big.context_window == 65536
    # another provider serving the same id is not affected
    assert config.capabilities(Target("zai", "glm-5")).context_window == 200_000


def test_prefill_comes_from_the_provider_unless_the_model_says_otherwise() -> None:
    config = parse()
    assert config.capabilities(Target("zai", "glm-5")).prefill is False  # OpenAI format default
    config = parse('[providers.capabilities."llama3.1-8b"]\nprefill = true\n')
    assert config.capabilities(Target("cerebras", "llama3.1-8b")).prefill == "assistant"


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (
            '[providers.capabilities."llama3.1-8b"]\ncontext_windw = 1\n',
            'providers[1].capabilities."llama3.1-8b".context_windw',
            "did you mean 'context_window'",
        ),
        (
            '[providers.capabilities."llama3.1-8b"]\ncontext_window = "8k"\n',
            'providers[1].capabilities."llama3.1-8b".context_window',
            "positive integer",
        ),
        (
            '[providers.capabilities."llama3.1-8b"]\ntools = 1\n',
            'providers[1].capabilities."llama3.1-8b".tools',
            "expected boolean",
        ),
        (
            '[providers.capabilities."llama3.1-8b"]\nprice_out = -1\n',
            'providers[1].capabilities."llama3.1-8b".price_out',
            "number >= 0",
        ),
        (
            '[providers.capabilities."llama3.1-8b"]\nreasoning_field = "think"\n',
            'providers[1].capabilities."llama3.1-8b".reasoning_field',
            "reasoning_content",
        ),
        (
            '[providers.capabilities."llama3.1-80b"]\ntools = true\n',
            'providers[1].capabilities."llama3.1-80b"',
            "did you mean 'llama3.1-8b'",
        ),
        (
            '[providers.capabilities."llama3.1-8b"]\ntools = true\nheaders = {}\n',
            'providers[1].capabilities."llama3.1-8b".headers',
            "move it above",
        ),
    ],
)
def test_bad_overrides_name_their_key(extra: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    assert info.value.key == key
    assert message in info.value.message


# --- the checks routing makes ------------------------------------------------------------------

SMALL = ModelCapabilities(context_window=8192, max_output_tokens=8192, tools=True, vision=False)


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        (RequestSummary("m", token_estimate=6000, max_output_tokens=32000), None),
        (RequestSummary("m", token_estimate=7000, max_output_tokens=32000), "too large"),
        (RequestSummary("m", token_estimate=7000, max_output_tokens=200), None),
        (RequestSummary("m", token_estimate=100, has_images=True), "text-only"),
        (RequestSummary("m", token_estimate=100, has_tools=True), None),
    ],
)
def test_unfit_reason(summary: RequestSummary, reason: str | None) -> None:
    found = unfit_reason(SMALL, summary)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_unknown_capabilities_never_skip() -> None:
    huge = RequestSummary("m", token_estimate=10**7, has_images=True, has_tools=True)
    assert unfit_reason(UNKNOWN, huge) is None
    assert unfit_reason(ModelCapabilities(tools=False), huge) == (
        "no tool support: the request defines tools"
    )
    assert unfit_reason(ModelCapabilities(retired=True), huge) is not None


def test_output_cap_is_the_smaller_of_model_cap_and_room_left() -> None:
    assert output_cap(SMALL, 1000) == 8192 - 1100
    assert output_cap(ModelCapabilities(max_output_tokens=4096), 10**6) == 4096
    assert output_cap(UNKNOWN, 5000) is None


def test_clamp_anthropic_body_keeps_a_valid_thinking_budget() -> None:
    body = {
        "model": "m",
        "max_tokens": 64000,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
    }
    clamped = clamp_max_tokens(body, ProviderFormat.ANTHROPIC, 8192)
    assert clamped["max_tokens"] == 8192
    assert clamped["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 64000  # the client's body is not touched
    tiny = clamp_max_tokens(body, ProviderFormat.ANTHROPIC, 1500)
    assert tiny["max_tokens"] == 1500 and "thinking" not in tiny  # below Anthropic's minimum
    adaptive = {"model": "m", "max_tokens": 64000, "thinking": {"type": "adaptive"}}
    assert clamp_max_tokens(adaptive, ProviderFormat.ANTHROPIC, 8192)["thinking"] == {
        "type": "adaptive"
    }


def test_clamp_other_formats_and_no_op_cases() -> None:
    both = {"model": "m", "max_tokens": 9000, "max_completion_tokens": 9000}
    assert clamp_max_tokens(both, ProviderFormat.OPENAI, 8192) == {
        "model": "m",
        "max_tokens": 8192,
        "max_completion_tokens": 8192,
    }
    responses = {"model": "m", "max_output_tokens": 100_000}
    assert clamp_max_tokens(responses, ProviderFormat.CODEX, 65536)["max_output_tokens"] == 65536
    within = {"model": "m", "max_tokens": 100}
    assert clamp_max_tokens(within, ProviderFormat.ANTHROPIC, 8192) is within
    assert clamp_max_tokens(within, ProviderFormat.ANTHROPIC, None) is within
    unset = {"model": "m"}
    assert clamp_max_tokens(unset, ProviderFormat.OPENAI, 10) is unset


# --- routing with capabilities -----------------------------------------------------------------


def test_decision_records_skipped_targets_and_keeps_the_chain_when_nothing_fits() -> None:
    config = parse()
    big = RequestSummary("auto", token_estimate=20_000, max_output_tokens=4096)
    d = decide(big, config)
    assert d.chain == (Target("zai", "glm-5"),)
    assert d.skipped[0].target == Target("cerebras", "llama3.1-8b")
    assert "8192-token window" in d.skipped[0].reason
    image = RequestSummary("auto", has_images=True)
    d = decide(image, config)
    assert d.chain == (Target("cerebras", "llama3.1-8b"), Target("zai", "glm-5"))
    assert d.skipped == () and len(d.unfit) == 2
    assert "trying the whole chain" in d.reason


# --- the provider catalog ----------------------------------------------------------------------


def load_payload(name: str) -> Any:
    return orjson.loads((CATALOG_DATA / name).read_bytes())


def test_parse_anthropic_model_list() -> None:
    models = parse_model_list(load_payload("anthropic_models.json"))
    sonnet = models["claude-sonnet-4-5-20250929"]
    assert (sonnet.context_window, sonnet.max_output_tokens) == (200_000, 64_000)
    assert (sonnet.vision, sonnet.reasoning, sonnet.reasoning_field) == (True, True, "thinking")
    assert sonnet.retired is None and sonnet.source == "catalog"
    assert models["claude-3-opus-20240229"].retired is True


def test_parse_openrouter_and_groq_model_lists() -> None:
    models = parse_model_list(load_payload("openrouter_models.json"))
    sonnet = models["anthropic/claude-sonnet-4.5"]
    assert (sonnet.context_window, sonnet.max_output_tokens) == (1_000_000, 64_000)
    assert (sonnet.price_in, sonnet.price_out) == (3.0, 15.0)
    assert (sonnet.vision, sonnet.tools, sonnet.reasoning) == (True, True, True)
    free = models["meta-llama/llama-3.3-70b-instruct:free"]
    assert (free.vision, free.tools, free.price_in) == (False, False, 0.0)
    groq = parse_model_list(load_payload("groq_models.json"))["llama-3.3-70b-versatile"]
    assert (groq.context_window, groq.max_output_tokens, groq.tools) == (131_072, 32_768, None)
    bare = parse_model_list(load_payload("cerebras_models.json"))["llama3.1-8b"]
    assert bare.context_window is None  # ids only: the built-in table still answers
    with pytest.raises(ValueError, match="no 'data' array"):
        parse_model_list({"object": "list"})


def catalog_sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("cerebras", "openai", ["llama3.1-8b", "qwen-3-32b"]),
        SimulatedProvider("anthropic", "anthropic", ["claude-sonnet-4-5"], api_key="right"),
    ]


def catalog_config(sims: dict[str, SimulatedProvider], key: str = "right") -> Config:
    text = f"""
[router]
default = "cerebras,llama3.1-8b"
[[providers]]
name = "cerebras"
api_base_url = "{sims["cerebras"].base_url}"
models = ["llama3.1-8b", "llama-3.3-70b"]
allow_private_network = true
[[providers]]
name = "anthropic"
api_base_url = "{sims["anthropic"].base_url}"
api_key = "{key}"
models = ["claude-sonnet-4-5"]
allow_private_network = true
[[providers]]
name = "openai-codex"
api_base_url = "https://chatgpt.com/backend-api/codex"
models = ["gpt-5.2"]
"""
    return parse_config(text, {})


async def test_refresh_catalog_writes_the_cache_that_capabilities_read(tmp_path: Path) -> None:
    async with run_simulated(catalog_sims()) as sims, local_client() as session:
        config = catalog_config(sims)
        report = await refresh_catalog(config, session, tmp_path)
        by_name = {p.provider: p for p in report.providers}
        assert by_name["cerebras"].ok and by_name["cerebras"].models == 2
        assert by_name["cerebras"].unlisted == ("llama-3.3-70b",)  # retired at the provider
        assert by_name["anthropic"].ok and by_name["anthropic"].models == 1
        assert by_name["openai-codex"].skipped and not report.failed
        cache = orjson.loads((tmp_path / CACHE_FILE).read_bytes())
        assert set(cache["providers"]) == {"cerebras", "anthropic"}

        catalog = load_catalog(config, tmp_path)
        assert catalog.lists(Target("cerebras", "llama-3.3-70b")) is False
        assert catalog.lists(Target("openai-codex", "gpt-5.2")) is None
        with_catalog = config.with_catalog(catalog)
        assert with_catalog.capabilities(Target("cerebras", "llama3.1-8b")).source == (
            "builtin:llama3.1-8b"  # the sim publishes ids only
        )

        # a failing provider keeps its previous entry; the others are refreshed
        broken = catalog_config(sims, key="wrong")
        report = await refresh_catalog(broken, session, tmp_path)
        assert [p.provider for p in report.failed] == ["anthropic"]
        assert "HTTP 401" in report.failed[0].error
        assert "anthropic" in orjson.loads((tmp_path / CACHE_FILE).read_bytes())["providers"]


def test_cached_lists_from_another_url_are_ignored(tmp_path: Path) -> None:
    config = parse()
    models = {"glm-5": {"context_window": 1234, "vision": True}}
    cache = {
        "version": 1,
        "providers": {
            "zai": {
                "api_base_url": "https://api.z.ai/api/paas/v4",
                "fetched_at": "t",
                "models": models,
            },
            "cerebras": {
                "api_base_url": "https://elsewhere.example/v1",
                "fetched_at": "t",
                "models": {"llama3.1-8b": {"context_window": 1}},
            },
        },
    }
    (tmp_path / CACHE_FILE).write_bytes(orjson.dumps(cache))
    config = config.with_catalog(load_catalog(config, tmp_path))
    glm = config.capabilities(Target("zai", "glm-5"))
    assert (glm.context_window, glm.vision, glm.source) == (1234, True, "catalog+builtin:glm-5*")
    assert config.capabilities(Target("cerebras", "llama3.1-8b")).context_window == 8192
    (tmp_path / CACHE_FILE).write_text("not json")
    assert load_catalog(config, tmp_path).providers == {}


def test_providers_refresh_command(tmp_path: Path) -> None:
    app = Typer()
    app.command("refresh")(providers_refresh)
    app.command("other")(lambda: None)  # keep `refresh` a subcommand, as in `providers refresh`
    with SimulatorThread(catalog_sims()) as sims:
        path = tmp_path / "config.toml"
        path.write_text(catalog_config_text(sims))
        result = CliRunner().invoke(
            app, ["refresh", "--config", str(path), "--cache-dir", str(tmp_path), "--json"]
        )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["cache"] == str(tmp_path / CACHE_FILE)
    cerebras = next(p for p in report["providers"] if p["provider"] == "cerebras")
    assert cerebras["unlisted"] == ["llama-3.3-70b"]


def catalog_config_text(sims: dict[str, SimulatedProvider]) -> str:
    return f"""
[router]
default = "cerebras,llama3.1-8b"
[[providers]]
name = "cerebras"
api_base_url = "{sims["cerebras"].base_url}"
models = ["llama3.1-8b", "llama-3.3-70b"]
allow_private_network = true
[[providers]]
name = "anthropic"
api_base_url = "{sims["anthropic"].base_url}"
api_key = "right"
models = ["claude-sonnet-4-5"]
allow_private_network = true
"""


# --- through the daemon ------------------------------------------------------------------------


def small_and_large() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("cerebras", "openai", ["llama3.1-8b"]),
        SimulatedProvider("zai", "openai", ["glm-5"]),
    ]


async def ask(clients: Clients, proxy: Daemon, **extra: Any) -> tuple[str, dict[str, str]]:
    messages = extra.pop("messages", [{"role": "user", "content": "Hello there"}])
    raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
        model="auto", messages=messages, **extra
    )
    raw.parse()
    return raw.headers["x-llmproxy-provider"], dict(raw.headers)


async def test_oversized_request_skips_the_small_context_model(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(small_and_large()) as sims:
        proxy = await daemon(config_text(sims, {"default": "cerebras,llama3.1-8b|zai,glm-5"}))
        provider, _ = await ask(clients, proxy)
        assert provider == "cerebras"  # small requests still go to the first target
        big = [{"role": "user", "content": "word " * 12000}]  # ~10k tokens > 8k window
        provider, _ = await ask(clients, proxy, messages=big, max_tokens=1000)
        assert provider == "zai"
        assert len(sims["cerebras"].requests) == 1  # it never saw the big one


async def test_tools_request_skips_a_model_without_tool_support(
    clients: Clients, daemon: StartDaemon
) -> None:
    sims_list = [
        SimulatedProvider("local", "openai", ["tiny"]),
        SimulatedProvider("zai", "openai", ["glm-5"]),
    ]
    async with run_simulated(sims_list) as sims:
        no_tools = '[providers.capabilities."tiny"]\ntools = false\n'
        text = config_text(
            sims, {"default": "local,tiny|zai,glm-5"}, provider_extra={"local": no_tools}
        )
        proxy = await daemon(text)
        tool = {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
        provider, _ = await ask(clients, proxy, tools=[tool])
        assert provider == "zai"
        provider, _ = await ask(clients, proxy)
        assert provider == "local"
        assert [r.body.get("tools") for r in sims["local"].requests] == [None]


async def test_image_request_reaches_only_vision_models(
    clients: Clients, daemon: StartDaemon
) -> None:
    sims_list = [
        *small_and_large(),
        SimulatedProvider("anthropic", "anthropic", ["claude-sonnet-4-5"]),
    ]
    async with run_simulated(sims_list) as sims:
        chain = "cerebras,llama3.1-8b|zai,glm-5|anthropic,claude-sonnet-4-5"
        proxy = await daemon(config_text(sims, {"default": chain}))
        image = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{TINY_PNG}"},
                    },
                ],
            }
        ]
        provider, _ = await ask(clients, proxy, messages=image)
        assert provider == "anthropic"
        assert not sims["cerebras"].requests and not sims["zai"].requests
        block = sims["anthropic"].requests[0].body["messages"][0]["content"][1]
        assert block["type"] == "image"


async def test_retired_model_is_cooled_down_and_skipped(
    clients: Clients, daemon: StartDaemon
) -> None:
    """A model the provider retired answers 404 `model_not_found`: the first request falls
    back, and later requests skip it without asking (health puts it on a long cooldown)."""
    retired = SimulatedProvider(
        "cerebras",
        "openai",
        ["llama-3.3-70b"],
        plan=FaultPlan.always(model_not_found("openai", "llama-3.3-70b")),
    )
    async with run_simulated([retired, SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "cerebras,llama-3.3-70b|zai,glm-5"}))
        provider, headers = await ask(clients, proxy)
        assert provider == "zai"
        assert headers["x-llmproxy-attempts"] == "cerebras,llama-3.3-70b=404;zai,glm-5=ok"
        for _ in range(2):
            provider, headers = await ask(clients, proxy)
            assert provider == "zai"
            attempts = headers["x-llmproxy-attempts"]
            assert attempts.startswith("cerebras,llama-3.3-70b=") and "=404" not in attempts
        assert len(sims["cerebras"].requests) == 1  # asked once, then skipped
        detail = {"x-api-key": CLIENT_KEY}  # the targets' health is for key holders
        async with (
            aiohttp.ClientSession() as session,
            session.get(proxy.url + "/health", headers=detail) as r,
        ):
            targets = {t["target"]: t for t in (await r.json())["targets"]}
        cooling = targets["cerebras,llama-3.3-70b"]
        assert cooling["cooldown_left"] > 60 and "not_found" in cooling["reason"]


async def test_capability_skips_show_in_the_attempts_header(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(small_and_large()) as sims:
        proxy = await daemon(config_text(sims, {"default": "cerebras,llama3.1-8b|zai,glm-5"}))
        big = [{"role": "user", "content": "word " * 12000}]
        _, headers = await ask(clients, proxy, messages=big, max_tokens=1000)
        assert headers["x-llmproxy-attempts"].startswith("cerebras,llama3.1-8b=")
