"""Mid-stream continuation in each provider's own prefill style (issue 11): a trailing assistant
message, `"prefix": true`, `"partial": true`, or `continue_final_message`. Simulated providers
take exactly one style and refuse the others, so a style sent to the wrong provider fails."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.capabilities import PrefillStyle
from proxy.config import parse_config
from proxy.simulate import CutAfter, FaultPlan, SimulatedProvider, reply_text, run_simulated
from proxy.simulate.openai_app import PREFILL_STYLES
from proxy.types import Target

StartDaemon = Callable[[str], Awaitable[Daemon]]
QUESTION = "Please tell me a long story about failover"
HELLO = [{"role": "user", "content": QUESTION}]
FULL = reply_text("glm", "glm-5", QUESTION)


def sim(name: str, style: str | None = None, plan: FaultPlan | None = None) -> SimulatedProvider:
    return SimulatedProvider(
        name, "openai", ["glm-5"], persona="glm", prefill_style=style, plan=plan
    )


def marker(body: dict[str, Any]) -> str:
    """Which prefill style a request used."""
    last = body["messages"][-1]
    assert last["role"] == "assistant"
    for flag in ("prefix", "partial"):
        if last.get(flag) is True:
            return flag
    if body.get("continue_final_message") is True:
        assert body["add_generation_prompt"] is False
        return "continue_final_message"
    return "assistant"


async def stream_text(client: openai.AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(
        model="auto",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


@pytest.mark.parametrize("style", PREFILL_STYLES)
async def test_a_cut_stream_is_continued_in_the_fallbacks_own_style(
    clients: Clients, daemon: StartDaemon, style: str
) -> None:
    async with run_simulated(
        [sim("zai", plan=FaultPlan([CutAfter(3)])), sim("mirror", style)]
    ) as sims:
        proxy = await daemon(
            config_text(
                sims,
                {"default": "zai,glm-5|mirror,glm-5"},
                provider_extra={"mirror": f'prefill = "{style}"'},
            )
        )
        text = await stream_text(clients.openai(proxy))
        (continuation,) = sims["mirror"].requests
    assert text == FULL
    assert marker(continuation.body) == style


async def test_each_continuation_target_gets_only_its_own_style(
    clients: Clients, daemon: StartDaemon
) -> None:
    # Kimi-style first (cut again), then a vLLM-style server finishes the answer.
    async with run_simulated(
        [
            sim("zai", plan=FaultPlan([CutAfter(2)])),
            sim("kimi", "partial", plan=FaultPlan([CutAfter(2)])),
            sim("vllm", "continue_final_message"),
        ]
    ) as sims:
        proxy = await daemon(
            config_text(
                sims,
                {"default": "zai,glm-5|kimi,glm-5|vllm,glm-5"},
                provider_extra={
                    "kimi": 'prefill = "partial"',
                    "vllm": 'prefill = "continue_final_message"',
                },
            )
        )
        text = await stream_text(clients.openai(proxy))
        (first,) = sims["kimi"].requests
        (second,) = sims["vllm"].requests
    assert text == FULL
    assert marker(first.body) == "partial"
    assert marker(second.body) == "continue_final_message"
    assert len(second.body["messages"][-1]["content"]) > len(first.body["messages"][-1]["content"])


async def test_an_anthropic_client_is_continued_on_a_prefix_style_provider(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(
        [sim("zai", plan=FaultPlan([CutAfter(3)])), sim("deepseek", "prefix")]
    ) as sims:
        proxy = await daemon(
            config_text(
                sims,
                {"default": "zai,glm-5|deepseek,glm-5"},
                provider_extra={"deepseek": 'prefill = "prefix"'},
            )
        )
        async with clients.anthropic(proxy).messages.stream(
            model="auto",
            max_tokens=512,
            messages=HELLO,  # type: ignore[arg-type]
        ) as stream:
            message = await stream.get_final_message()
        (continuation,) = sims["deepseek"].requests
    assert message.content[0].text == FULL  # type: ignore[union-attr]
    assert marker(continuation.body) == "prefix"


@pytest.mark.parametrize(
    ("accepted", "sent"),
    [(a, s) for a, s in itertools.product(PREFILL_STYLES, PREFILL_STYLES) if a != s],
)
async def test_a_simulated_provider_refuses_every_style_but_its_own(
    accepted: str, sent: str
) -> None:
    last: dict[str, Any] = {"role": "assistant", "content": "[glm/glm-5] You"}
    body: dict[str, Any] = {"model": "glm-5", "messages": [*HELLO, last]}
    if sent in ("prefix", "partial"):
        last[sent] = True
    elif sent == "continue_final_message":
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    async with run_simulated([sim("p", accepted)]) as sims, aiohttp.ClientSession() as session:
        url = sims["p"].base_url + "/chat/completions"
        async with session.post(url, json=body) as refused:
            error = await refused.json()
        async with session.post(url, json={"model": "glm-5", "messages": HELLO}) as plain:
            assert plain.status == 200  # an ordinary request is fine
    assert refused.status == 400
    assert error["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("url", "style"),
    [
        ("https://api.deepseek.com/beta", PrefillStyle.PREFIX),
        ("https://api.deepseek.com/v1", False),  # prefix completion is a beta-endpoint feature
        ("https://api.mistral.ai/v1", PrefillStyle.PREFIX),
        ("https://api.moonshot.ai/v1", PrefillStyle.PARTIAL),
        ("https://openrouter.ai/api/v1", PrefillStyle.ASSISTANT),
        ("https://api.cerebras.ai/v1", False),
    ],
)
def test_known_hosts_have_their_documented_prefill_style(url: str, style: object) -> None:
    text = (
        f'[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\napi_base_url = "{url}"\n'
        'models = ["m"]\n'
    )
    config = parse_config(text, {})
    assert config.capabilities(Target("p", "m")).prefill == style


def test_a_style_an_anthropic_provider_does_not_speak_is_a_config_error() -> None:
    text = (
        '[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\nformat = "anthropic"\n'
        'api_base_url = "https://api.example.com"\nmodels = ["m"]\nprefill = "partial"\n'
    )
    with pytest.raises(ValueError, match=r"providers\[0\]\.prefill"):
        parse_config(text, {})
