"""The simulators' prompt cache follows the providers' documented rules (see
`proxy.simulate.prompt_cache`): minimum size, breakpoints for Anthropic, 128-token increments
for OpenAI, expiry after the TTL from the last use, one cache per model."""

from __future__ import annotations

from typing import Any

import aiohttp

from proxy.simulate import SimulatedProvider, run_simulated
from proxy.simulate.prompt_cache import CacheUsage, PromptCache
from proxy.simulate.scripts import estimate_input_tokens
from proxy.types import ProviderFormat

LONG = "A stable system prompt that every turn repeats, word for word. " * 100
BREAKPOINT = {"type": "ephemeral"}


def chat(*turns: str, model: str = "glm-5") -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": LONG}]
    for turn in turns:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": "ok"}]
    return {"model": model, "messages": messages[:-1]}


def account(cache: PromptCache, body: dict[str, Any], fmt: ProviderFormat) -> CacheUsage:
    return cache.account(body, fmt, estimate_input_tokens(body))


def test_openai_caches_prefixes_automatically_in_128_token_steps() -> None:
    cache = PromptCache()
    assert account(cache, chat("one"), ProviderFormat.OPENAI) == CacheUsage()
    warm = account(cache, chat("one", "two"), ProviderFormat.OPENAI)
    assert warm.read >= 1024 and (warm.read - 1024) % 128 == 0 and warm.written == 0
    assert warm.read <= estimate_input_tokens(chat("one", "two"))


def test_short_prompts_are_never_cached() -> None:
    cache = PromptCache()
    short = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    account(cache, short, ProviderFormat.OPENAI)
    assert account(cache, short, ProviderFormat.OPENAI) == CacheUsage()


def test_entries_expire_after_the_ttl_from_their_last_use_and_per_model() -> None:
    now = [0.0]
    cache = PromptCache(ttl=300.0, clock=lambda: now[0])
    account(cache, chat("one"), ProviderFormat.OPENAI)
    now[0] = 299.0
    assert account(cache, chat("one", "two"), ProviderFormat.OPENAI).read > 0  # refreshes it
    now[0] = 598.0
    assert account(cache, chat("one", "two", "three"), ProviderFormat.OPENAI).read > 0
    now[0] = 1000.0
    assert account(cache, chat("one", "two", "three"), ProviderFormat.OPENAI).read == 0
    other_model = chat("one", "two", "three", model="glm-4.6")
    assert account(cache, other_model, ProviderFormat.OPENAI).read == 0


def anthropic_body(*turns: str, breakpoints: bool = True) -> dict[str, Any]:
    system: dict[str, Any] = {"type": "text", "text": LONG}
    messages: list[dict[str, Any]] = []
    for turn in turns:
        messages += [
            {"role": "user", "content": [{"type": "text", "text": turn}]},
            {"role": "assistant", "content": "ok"},
        ]
    messages.pop()
    if breakpoints:
        system["cache_control"] = BREAKPOINT
        messages[-1]["content"][-1]["cache_control"] = BREAKPOINT
    return {"model": "MiniMax-M2.5", "max_tokens": 64, "system": [system], "messages": messages}


def test_anthropic_caches_only_up_to_breakpoints() -> None:
    cache = PromptCache()
    plain = anthropic_body("one", breakpoints=False)
    account(cache, plain, ProviderFormat.ANTHROPIC)
    assert account(cache, plain, ProviderFormat.ANTHROPIC) == CacheUsage()
    first = account(cache, anthropic_body("one"), ProviderFormat.ANTHROPIC)
    assert first.read == 0 and first.written > 1024
    second = account(cache, anthropic_body("one", "two"), ProviderFormat.ANTHROPIC)
    assert second.read >= first.written  # the previous turn's prefix, found by the lookback
    assert 0 < second.written < 100  # only the new turn is written


async def test_simulators_report_the_cache_in_their_own_fields() -> None:
    sims = [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2.5"]),
    ]
    async with run_simulated(sims) as running, aiohttp.ClientSession() as http:
        zai, minimax = running["zai"], running["minimax"]
        usages = []
        for body in (chat("one"), chat("one", "two")):
            async with http.post(zai.base_url + "/chat/completions", json=body) as reply:
                usages.append((await reply.json())["usage"])
        assert usages[0]["prompt_tokens_details"] == {"cached_tokens": 0}
        assert usages[1]["prompt_tokens_details"]["cached_tokens"] > 1024
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        usages = []
        for body in (anthropic_body("one"), anthropic_body("one", "two")):
            async with http.post(
                minimax.base_url + "/v1/messages", json=body, headers=headers
            ) as reply:
                usages.append((await reply.json())["usage"])
        assert usages[0]["cache_read_input_tokens"] == 0
        assert usages[0]["cache_creation_input_tokens"] > 1024
        assert usages[1]["cache_read_input_tokens"] > 1024
        total = estimate_input_tokens(anthropic_body("one", "two"))
        assert (
            sum(
                usages[1][k]
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            == total
        )


def test_anthropic_writes_entries_only_at_breakpoints() -> None:
    """Turn one marks only the system prompt: its messages are not written, so turn two (whose
    breakpoint is on its last message) reads only the system prompt's entry."""
    cache = PromptCache()
    one = anthropic_body("one " * 800)
    del one["messages"][-1]["content"][-1]["cache_control"]
    first = account(cache, one, ProviderFormat.ANTHROPIC)
    system_only = first.written
    assert first.read == 0 and 1024 < system_only < estimate_input_tokens(one) - 700
    second = account(cache, anthropic_body("one " * 800, "two"), ProviderFormat.ANTHROPIC)
    assert second.read == system_only  # not the 800-word message: no entry was written there
    assert second.written > 700


def test_anthropic_lookback_reaches_at_most_20_blocks_before_a_breakpoint() -> None:
    """Turn one's entry ends at its breakpoint; a next request with 21 more blocks before its
    only breakpoint does not find it, one with 20 does."""

    def grown(extra: int) -> dict[str, Any]:
        body = anthropic_body("one")
        blocks = [{"type": "text", "text": f"block {i}"} for i in range(extra)]
        body["messages"] += [
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": blocks},
        ]
        body["messages"][0]["content"][-1].pop("cache_control")
        body["messages"][-1]["content"][-1]["cache_control"] = BREAKPOINT
        body["system"][0].pop("cache_control")
        return body

    for extra, found in ((19, True), (20, False)):  # +1 for the assistant block
        cache = PromptCache()
        first = account(cache, anthropic_body("one"), ProviderFormat.ANTHROPIC)
        second = account(cache, grown(extra), ProviderFormat.ANTHROPIC)
        assert (second.read == first.written) is found, (extra, second)
        assert (second.read == 0) is not found


def test_anthropic_minimum_depends_on_the_model() -> None:
    """About 1500 tokens: cached for Sonnet 4.5, not for Haiku 3.5 (2048) or Opus 4.5 (4096)."""
    text = "A stable system prompt that every turn repeats, word for word. " * 90
    for model, cached in (
        ("claude-sonnet-4-5", True),
        ("claude-3-5-haiku-20241022", False),
        ("claude-opus-4-5", False),
        ("claude-haiku-4-5", False),
    ):
        body = anthropic_body("one")
        body["model"], body["system"][0]["text"] = model, text
        assert 1024 < estimate_input_tokens(body) < 2048
        usage = account(PromptCache(), body, ProviderFormat.ANTHROPIC)
        assert (usage.written > 0) is cached, model
    body = anthropic_body("one")
    body["model"], body["system"][0]["text"] = "claude-haiku-4-5", LONG * 3
    assert account(PromptCache(), body, ProviderFormat.ANTHROPIC).written > 4096


def test_anthropic_one_hour_breakpoints_outlive_the_default_ttl() -> None:
    now = [0.0]
    cache = PromptCache(ttl=300.0, clock=lambda: now[0])
    hour = anthropic_body("one")
    hour["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    account(cache, hour, ProviderFormat.ANTHROPIC)
    now[0] = 3000.0  # the 5-minute entry at the message is gone, the system prompt's is not
    later = account(cache, anthropic_body("one", "two"), ProviderFormat.ANTHROPIC)
    assert 1024 < later.read < estimate_input_tokens(anthropic_body("one")) - 5
    now[0] = 3000.0 + 3601.0
    assert account(cache, anthropic_body("one", "two"), ProviderFormat.ANTHROPIC).read == 0


async def test_openai_format_usage_styles_of_deepseek_and_kimi() -> None:
    sims = [
        SimulatedProvider("deepseek", "openai", ["deepseek-chat"], usage_style="deepseek"),
        SimulatedProvider("kimi", "openai", ["kimi-k2"], usage_style="kimi"),
    ]
    async with run_simulated(sims) as running, aiohttp.ClientSession() as http:
        for name, model in (("deepseek", "deepseek-chat"), ("kimi", "kimi-k2")):
            usages = []
            for body in (chat("one", model=model), chat("one", "two", model=model)):
                async with http.post(
                    running[name].base_url + "/chat/completions", json=body
                ) as reply:
                    usages.append((await reply.json())["usage"])
            assert all("prompt_tokens_details" not in u for u in usages)
            if name == "deepseek":  # hit + miss = prompt_tokens
                assert usages[0]["prompt_cache_hit_tokens"] == 0
                assert usages[1]["prompt_cache_hit_tokens"] > 1024
                assert (
                    usages[1]["prompt_cache_hit_tokens"] + usages[1]["prompt_cache_miss_tokens"]
                    == usages[1]["prompt_tokens"]
                )
            else:
                assert usages[0]["cached_tokens"] == 0 and usages[1]["cached_tokens"] > 1024
