"""Rate limits, exactly: the N+1th request in a window gets 429 with Retry-After in the client's
dialect and passes once Retry-After has elapsed (an injected clock, no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from raw_http import get, post
from security_support import Apps, anthropic_error, openai_error
from support import CLIENT_KEY, config_text

from proxy import tokens
from proxy.config import parse_config
from proxy.errors import ConfigError
from proxy.security.ratelimit import MemoryRateLimiter, RateLimited
from proxy.security.settings import Rate, RateLimitSettings
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.tokens import RequestText
from proxy.types import ClientAPI, JSONObject

PROMPT = [{"role": "user", "content": "Hello there"}]
OPENAI_BODY = {"model": "auto", "messages": PROMPT}
ANTHROPIC_BODY = {"model": "auto", "max_tokens": 20, "messages": PROMPT}
OTHER_KEY = "sk-other-client-key-1234"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


def limited(sims: dict[str, SimulatedProvider], limits: str) -> str:
    text = config_text(sims, {"default": "zai,glm-5"}).replace(
        f'api_key = "{CLIENT_KEY}"', f'api_keys = ["{CLIENT_KEY}", "{OTHER_KEY}"]'
    )
    return text + "[security.rate_limiting]\n" + limits + "\n"


def zai(**kwargs: float) -> SimulatedProvider:
    return SimulatedProvider("zai", "openai", ["glm-5"], **kwargs)  # type: ignore[arg-type]


async def test_n_plus_first_request_gets_429_then_recovers(apps: Apps) -> None:
    clock = Clock()
    async with run_simulated([zai()]) as sims:
        config = parse_config(limited(sims, "requests_per_minute = 3"), {})
        limiter = MemoryRateLimiter(config.security.rate_limiting, clock)
        proxy = await apps.start(config, rate_limiter=limiter)
        chat, messages = proxy.url + "/v1/chat/completions", proxy.url + "/v1/messages"
        for _ in range(3):
            assert (await post(chat, OPENAI_BODY)).status == 200
        refused = await post(chat, OPENAI_BODY)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "20"  # one request refills in 60/3 s
        error = openai_error(refused)
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert "requests per minute" in error["message"]

        refused = await post(messages, ANTHROPIC_BODY)  # same key, other dialect
        assert refused.status == 429
        assert anthropic_error(refused)["type"] == "rate_limit_error"
        assert refused.headers["Retry-After"] == "20"

        clock.now += 19.5
        almost = await post(chat, OPENAI_BODY)
        assert (almost.status, almost.headers["Retry-After"]) == (429, "1")
        clock.now += 0.5
        assert (await post(messages, ANTHROPIC_BODY)).status == 200
        assert (await post(chat, OPENAI_BODY)).status == 429
        assert len(sims["zai"].requests) == 4  # refused requests never reached the provider


async def test_per_key_and_global_buckets(apps: Apps) -> None:
    clock = Clock()
    async with run_simulated([zai()]) as sims:
        text = limited(
            sims,
            "requests_per_minute = 2\n[security.rate_limiting.global]\nrequests_per_minute = 3",
        )
        config = parse_config(text, {})
        proxy = await apps.start(
            config, rate_limiter=MemoryRateLimiter(config.security.rate_limiting, clock)
        )
        chat = proxy.url + "/v1/chat/completions"
        assert [(await post(chat, OPENAI_BODY)).status for _ in range(3)] == [200, 200, 429]
        other = await post(chat, OPENAI_BODY, key=OTHER_KEY)
        assert other.status == 200  # its own bucket
        refused = await post(chat, OPENAI_BODY, key=OTHER_KEY)
        assert refused.status == 429
        assert "global" in openai_error(refused)["message"]
        assert refused.headers["Retry-After"] == "20"  # the global bucket: 60/3 s


async def test_concurrent_requests(apps: Apps) -> None:
    async with run_simulated([zai(first_token_delay=0.4)]) as sims:
        config = parse_config(limited(sims, "requests_per_minute = 0\nconcurrent_requests = 1"), {})
        proxy = await apps.start(config)
        chat = proxy.url + "/v1/chat/completions"
        first = asyncio.create_task(post(chat, OPENAI_BODY))
        await asyncio.sleep(0.15)
        second = await post(chat, OPENAI_BODY)
        assert (second.status, second.headers["Retry-After"]) == (429, "1")
        assert "concurrent requests" in openai_error(second)["message"]
        assert (await post(chat, OPENAI_BODY, key=OTHER_KEY)).status == 200  # other key's slot
        assert (await first).status == 200
        assert (await post(chat, OPENAI_BODY)).status == 200  # the slot was released


async def test_count_tokens_is_limited_like_generation_and_models_is_not(apps: Apps) -> None:
    clock = Clock()
    async with run_simulated([zai()]) as sims:
        config = parse_config(limited(sims, "requests_per_minute = 2"), {})
        proxy = await apps.start(
            config, rate_limiter=MemoryRateLimiter(config.security.rate_limiting, clock)
        )
        assert (await post(proxy.url + "/v1/chat/completions", OPENAI_BODY)).status == 200
        counted = await post(proxy.url + "/v1/messages/count_tokens", ANTHROPIC_BODY)
        assert counted.status == 200
        refused = await post(proxy.url + "/v1/messages/count_tokens", ANTHROPIC_BODY)
        assert refused.status == 429 and refused.headers["Retry-After"]
        assert anthropic_error(refused)["type"] == "rate_limit_error"
        for _ in range(3):
            assert (await get(proxy.url + "/v1/models")).status == 200


async def test_tokens_per_minute() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(RateLimitSettings(True, Rate(tokens_per_minute=1000)), clock)
    lease = await limiter.acquire("key-1", 600)
    await lease.release()
    with pytest.raises(RateLimited) as info:
        await limiter.acquire("key-1", 600)
    assert info.value.dimension == "tokens per minute"
    assert info.value.retry_after == pytest.approx(12.0)  # 200 tokens at 1000/60 per second
    clock.now += 12.0
    await limiter.acquire("key-1", 600)
    clock.now += 60.0
    await limiter.acquire("key-1", 5000)  # bigger than the bucket: passes when full...
    clock.now += 60.0
    with pytest.raises(RateLimited):  # ...and leaves it in debt
        await limiter.acquire("key-1", 1)
    await limiter.acquire("key-2", 10)  # other keys are not affected


async def test_refused_request_costs_nothing() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(
        RateLimitSettings(True, Rate(requests_per_minute=10, tokens_per_minute=100)), clock
    )
    await limiter.acquire("k", 100)
    for _ in range(5):
        with pytest.raises(RateLimited):
            await limiter.acquire("k", 50)
    clock.now += 30.0  # 50 tokens back; the 5 refusals took no request tokens
    await limiter.acquire("k", 50)
    for _ in range(8):
        clock.now += 60.0
        await limiter.acquire("k", 1)


async def test_daemon_with_tokens_per_minute(apps: Apps) -> None:
    clock = Clock()
    async with run_simulated([zai()]) as sims:
        config = parse_config(limited(sims, "requests_per_minute = 0\ntokens_per_minute = 50"), {})
        proxy = await apps.start(
            config, rate_limiter=MemoryRateLimiter(config.security.rate_limiting, clock)
        )
        big = {"model": "auto", "messages": [{"role": "user", "content": "word " * 400}]}
        assert (await post(proxy.url + "/v1/chat/completions", big)).status == 200
        refused = await post(proxy.url + "/v1/chat/completions", OPENAI_BODY)
        assert refused.status == 429
        assert "tokens per minute" in openai_error(refused)["message"]


BASE = (
    '[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\n'
    'api_base_url = "https://api.example.com/v1"\nmodels = ["m"]\n'
)


def test_settings() -> None:
    assert not parse_config(BASE, {}).security.rate_limiting.active
    reference = parse_config(BASE + "[security.rate_limiting]\nenabled = true\n", {})
    assert reference.security.rate_limiting == RateLimitSettings(
        True, Rate(requests_per_minute=60, concurrent_requests=10), Rate()
    )
    off = parse_config(BASE + "[security.rate_limiting]\nenabled = false\n", {})
    assert not off.security.rate_limiting.active
    both = parse_config(
        BASE + "[security.rate_limiting]\ntokens_per_minute = 9000\n"
        "[security.rate_limiting.global]\nconcurrent_requests = 20\n",
        {},
    )
    assert both.security.rate_limiting.overall == Rate(concurrent_requests=20)
    assert both.security.rate_limiting.per_client.tokens_per_minute == 9000
    for bad, key in [
        (
            "[security.rate_limiting]\nrequests_per_minut = 1\n",
            "security.rate_limiting.requests_per_minut",
        ),
        (
            "[security.rate_limiting]\nrequests_per_minute = -1\n",
            "security.rate_limiting.requests_per_minute",
        ),
        ("[security.rate_limiting.global]\nburst = 1\n", "security.rate_limiting.global.burst"),
        ("[security]\nratelimit = 1\n", "security.ratelimit"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config(BASE + bad, {})
        assert info.value.key == key


async def test_the_limiter_s_token_estimate_is_the_one_routing_uses(
    apps: Apps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: with token limits on, a request's tokens are estimated once (the limiter's
    count is what routing reads), for each dialect. Every estimate walks the body with
    `request_text`, which is wrapped, not replaced."""
    estimates: list[RequestText] = []

    def counted(body: JSONObject, fmt: ClientAPI) -> RequestText:
        estimates.append(walk(body, fmt))
        return estimates[-1]

    walk = tokens.request_text
    monkeypatch.setattr(tokens, "request_text", counted)
    async with run_simulated([zai()]) as sims:
        config = parse_config(limited(sims, "tokens_per_minute = 100000"), {})
        proxy = await apps.start(config)
        for path, body in (("/v1/chat/completions", OPENAI_BODY), ("/v1/messages", ANTHROPIC_BODY)):
            estimates.clear()
            assert (await post(proxy.url + path, body)).status == 200
            assert len(estimates) == 1 and estimates[0].texts


async def test_count_tokens_is_not_charged_tokens(apps: Apps) -> None:
    clock = Clock()
    long_prompt = {**ANTHROPIC_BODY, "messages": [{"role": "user", "content": "word " * 4000}]}
    async with run_simulated([zai()]) as sims:
        config = parse_config(limited(sims, "tokens_per_minute = 2000"), {})
        proxy = await apps.start(
            config, rate_limiter=MemoryRateLimiter(config.security.rate_limiting, clock)
        )
        for _ in range(3):  # each estimate alone is over the minute's allowance
            counted = await post(proxy.url + "/v1/messages/count_tokens", long_prompt)
            assert counted.status == 200
            assert counted.json()["input_tokens"] > 2000
        assert (await post(proxy.url + "/v1/messages", ANTHROPIC_BODY)).status == 200
