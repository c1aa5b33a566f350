"""A stream's life after its commit point, through the real daemon: what the field found (issue
11) with real clients and real faults. Each test drives the daemon with the official SDKs or a
raw HTTP client in front of simulated providers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import aiohttp
import anthropic
import openai
import pytest
from conftest import Clients
from support import CLIENT_KEY, Daemon, config_text

from proxy.simulate import (
    CutAfter,
    DropAfterFinish,
    EndWithoutFinish,
    ErrorAfterFinish,
    FaultPlan,
    SimulatedProvider,
    Status,
    content_filter,
    invalid_request,
    reasoning_text,
    reply_text,
    run_simulated,
)
from proxy.simulate.scripts import DEFAULT_CHUNK_CHARS, chunk
from proxy.tokens import tokens_for_chars
from proxy.types import ClientAPI

StartDaemon = Callable[[str], Awaitable[Daemon]]
QUESTION = "Please tell me a long story about failover"
HELLO = [{"role": "user", "content": QUESTION}]
FULL_GLM_TEXT = reply_text("glm", "glm-5", QUESTION)
CEREBRAS_TEXT = reply_text("cerebras", "llama-3.3-70b", QUESTION)
MIRRORED = {"default": "zai,glm-5|zai-mirror,glm-5|cerebras,llama-3.3-70b"}
PREFILL = {"zai-mirror": "prefill = true"}


def zai(plan: FaultPlan, fmt: str = "openai", **kwargs: object) -> SimulatedProvider:
    return SimulatedProvider("zai", fmt, ["glm-5"], plan=plan, persona="glm", **kwargs)  # type: ignore[arg-type]


def mirror(
    fmt: str = "openai", plan: FaultPlan | None = None, models: tuple[str, ...] = ("glm-5",)
) -> SimulatedProvider:
    return SimulatedProvider(
        "zai-mirror", fmt, list(models), persona="glm", accepts_prefill=True, plan=plan
    )


def cerebras() -> SimulatedProvider:
    return SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"], accepts_prefill=False)


async def raw_stream(
    proxy: Daemon, body: dict[str, object], path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, str], bytes]:
    """The daemon's streamed answer byte for byte, read to its end by a plain aiohttp client
    (which would hang, or fail, on a second HTTP response written inside the chunked body)."""
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(proxy.url + path, json=body, headers=headers) as response,
    ):
        raw = await asyncio.wait_for(response.read(), 10)
        return response.status, dict(response.headers), raw


def trailer(raw: bytes, name: str) -> str | None:
    found = re.search(rb"^: " + re.escape(name.encode()) + rb" (.*)$", raw, re.MULTILINE)
    return found.group(1).decode() if found else None


async def health(proxy: Daemon) -> dict[str, dict[str, object]]:
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url + "/health", headers=auth) as response,
    ):
        body = await response.json()
    return {t["target"]: t for t in body["targets"]}


async def ask_stream(client: openai.AsyncOpenAI) -> tuple[str, str, list[object]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, raw.headers["x-llmproxy-attempts"], chunks


# --- 1. a stream counts as a success only when it finishes --------------------------------------


async def test_a_target_that_always_dies_after_its_first_token_trips_its_breaker(
    clients: Clients, daemon: StartDaemon
) -> None:
    health_text = "[proxy.health]\nfailure_threshold = 3\nopen_ms = 60000"
    async with run_simulated([zai(FaultPlan.always(CutAfter(1))), mirror(), cerebras()]) as sims:
        proxy = await daemon(
            config_text(sims, MIRRORED, timeouts=health_text, provider_extra=PREFILL)
        )
        client = clients.openai(proxy)
        for _ in range(3):
            text, attempts, _ = await ask_stream(client)
            assert text == FULL_GLM_TEXT  # each one continued on the mirror
            assert attempts == "zai,glm-5=streaming"  # the headers: the try has not ended
        text, attempts, _ = await ask_stream(client)
        state = await health(proxy)
        assert len(sims["zai"].requests) == 3
    assert text == FULL_GLM_TEXT
    assert attempts == "zai,glm-5=unavailable;zai-mirror,glm-5=streaming"
    assert state["zai,glm-5"]["state"] == "open"


# --- 2. the same-target retry respects the breaker ----------------------------------------------


async def test_the_failure_that_opens_the_breaker_is_not_retried_into_it_and_a_probe_gets_one_try(
    clients: Clients, daemon: StartDaemon
) -> None:
    health_text = "[proxy.health]\nfailure_threshold = 3\nopen_ms = 500"
    zai_sim = zai(FaultPlan.always(Status(500)))
    async with run_simulated([zai_sim, cerebras()]) as sims:
        proxy = await daemon(
            config_text(sims, {"default": "zai,glm-5|cerebras,llama-3.3-70b"}, timeouts=health_text)
        )
        client = clients.openai(proxy)

        async def attempts() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto",
                messages=HELLO,  # type: ignore[arg-type]
            )
            assert raw.parse().choices[0].message.content == CEREBRAS_TEXT
            return raw.headers["x-llmproxy-attempts"]

        assert await attempts() == "zai,glm-5=500;zai,glm-5=500;cerebras,llama-3.3-70b=ok"
        # the third failure opens the breaker: no retry into it
        assert await attempts() == "zai,glm-5=500;cerebras,llama-3.3-70b=ok"
        assert len(sims["zai"].requests) == 3
        await asyncio.sleep(0.6)
        # half-open: exactly one probe, which fails, so the breaker opens again
        assert await attempts() == "zai,glm-5=500;cerebras,llama-3.3-70b=ok"
        assert len(sims["zai"].requests) == 4


# --- 3. after the commit point, only the stream's owner writes, and only events -----------------


@pytest.mark.parametrize(
    "refusal",
    [
        invalid_request(ClientAPI.OPENAI, "This model does not accept that"),
        content_filter(ClientAPI.OPENAI),
    ],
    ids=["400", "content-filter"],
)
async def test_an_error_from_the_continuation_target_ends_the_stream_with_an_error_event(
    clients: Clients, daemon: StartDaemon, refusal: Status
) -> None:
    async with run_simulated(
        [zai(FaultPlan.always(CutAfter(3))), mirror(plan=FaultPlan.always(refusal))]
    ) as sims:
        proxy = await daemon(
            config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5"}, provider_extra=PREFILL)
        )
        status, _, raw = await raw_stream(
            proxy, {"model": "auto", "messages": HELLO, "stream": True}
        )
        assert len(sims["zai-mirror"].requests) == 1
        sdk_stream = await clients.openai(proxy).chat.completions.create(
            model="auto",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        received: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in sdk_stream:
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert status == 200
    assert b"HTTP/1.1" not in raw
    events = [line for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert b'"error"' in events[-1]  # the last event is the dialect's own error event
    assert b"[DONE]" not in raw
    assert "".join(received) and FULL_GLM_TEXT.startswith("".join(received))
    assert "zai-mirror,glm-5 could not continue the answer" in caught.value.message


async def test_an_anthropic_client_gets_an_error_event_when_the_continuation_refuses(
    clients: Clients, daemon: StartDaemon
) -> None:
    refusal = invalid_request(ClientAPI.ANTHROPIC, "messages: something is wrong")
    async with run_simulated(
        [zai(FaultPlan.always(CutAfter(3))), mirror("anthropic", plan=FaultPlan.always(refusal))]
    ) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5"}))
        status, _, raw = await raw_stream(
            proxy,
            {"model": "auto", "max_tokens": 512, "messages": HELLO, "stream": True},
            path="/v1/messages",
        )
        with pytest.raises(anthropic.APIStatusError):
            async with clients.anthropic(proxy).messages.stream(
                model="auto",
                max_tokens=512,
                messages=HELLO,  # type: ignore[arg-type]
            ) as stream:
                await stream.get_final_message()
    assert status == 200
    assert b"HTTP/1.1" not in raw
    assert raw.rstrip().split(b"\n\n")[-1].startswith(b"event: error")
    assert b"message_stop" not in raw


# --- 4. a continuation must be valid under the provider's real rules ---------------------------


CLAUDE_CODE_EXTRAS = {
    # What Claude Code 2.1.x sends on every request (thinking on, thinking clearing edit).
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
}


async def test_a_claude_code_request_is_continued_without_its_thinking_only_edits(
    clients: Clients, daemon: StartDaemon
) -> None:
    # cut three chunks into the answer text, after the whole (signed) thinking block
    cut = CutAfter(len(chunk(reasoning_text("glm", "glm-5", QUESTION), DEFAULT_CHUNK_CHARS)) + 3)
    async with run_simulated(
        [zai(FaultPlan([cut]), "anthropic", reasoning=True), mirror("anthropic")]
    ) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5"}))
        async with clients.anthropic(proxy).messages.stream(
            model="auto",
            max_tokens=4096,
            messages=HELLO,  # type: ignore[arg-type]
            extra_body=CLAUDE_CODE_EXTRAS,
        ) as stream:
            message = await stream.get_final_message()
        (continuation,) = sims["zai-mirror"].requests
    sent = continuation.body
    assert "thinking" not in sent
    edits = (sent.get("context_management") or {}).get("edits", [])
    assert not [e for e in edits if e["type"].startswith("clear_thinking")]
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].text == FULL_GLM_TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
            "`clear_thinking_20251015` strategy requires `thinking` to be enabled",
        ),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [*HELLO, {"role": "assistant", "content": "[glm/glm-5] You"}],
            },
            "When `thinking` is enabled, a final `assistant` message must start with a thinking",
        ),
        (
            {
                "messages": [
                    *HELLO,
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": "hm", "signature": "forged"},
                            {"type": "text", "text": "Hi"},
                        ],
                    },
                    {"role": "user", "content": "again"},
                ]
            },
            "Invalid `signature` in `thinking` block",
        ),
    ],
    ids=["clear-thinking-without-thinking", "prefill-with-thinking", "foreign-signature"],
)
async def test_the_anthropic_simulator_refuses_what_anthropic_refuses(
    extra: dict[str, object], expected: str
) -> None:
    async with run_simulated([mirror("anthropic")]) as sims:
        client = anthropic.AsyncAnthropic(
            base_url=sims["zai-mirror"].base_url, api_key="sim-key", max_retries=0
        )
        body: dict[str, object] = {"messages": HELLO, **extra}
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(
                model="glm-5",
                max_tokens=4096,
                messages=body.pop("messages"),  # type: ignore[arg-type]
                extra_body=body,
            )
        await client.close()
    assert expected in refused.value.message


# --- 5. the finish decides: a drop after it is complete, a clean end without it is a cut --------


async def test_a_connection_dropped_after_the_finish_is_a_complete_answer(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(
        [zai(FaultPlan.always(DropAfterFinish())), mirror(), cerebras()]
    ) as sims:
        proxy = await daemon(config_text(sims, MIRRORED, provider_extra=PREFILL))
        text, attempts, chunks = await ask_stream(clients.openai(proxy))
        _, _, raw = await raw_stream(proxy, {"model": "auto", "messages": HELLO, "stream": True})
        state = await health(proxy)
        assert sims["zai-mirror"].requests == ()  # no extra, billed continuation
    assert text == FULL_GLM_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
    assert attempts == "zai,glm-5=streaming"
    assert trailer(raw, "x-llmproxy-attempts") == "zai,glm-5=ok"
    assert b'"error"' not in raw
    assert state["zai,glm-5"]["success_rate"] == 1.0


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_an_error_event_after_the_finish_is_a_complete_answer(
    clients: Clients, daemon: StartDaemon, fmt: str
) -> None:
    async with run_simulated(
        [zai(FaultPlan.always(ErrorAfterFinish()), fmt), mirror(), cerebras()]
    ) as sims:
        proxy = await daemon(config_text(sims, MIRRORED, provider_extra=PREFILL))
        text, attempts, chunks = await ask_stream(clients.openai(proxy))
        _, _, raw = await raw_stream(proxy, {"model": "auto", "messages": HELLO, "stream": True})
        state = await health(proxy)
        assert attempts == "zai,glm-5=streaming"
        assert trailer(raw, "x-llmproxy-attempts") == "zai,glm-5=ok"
        assert sims["zai-mirror"].requests == ()
        assert sims["zai"].requests[0].outcome == "ErrorAfterFinish"
    assert text == FULL_GLM_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
    assert state["zai,glm-5"]["success_rate"] == 1.0


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_a_body_that_ends_cleanly_without_a_finish_is_a_cut(
    clients: Clients, daemon: StartDaemon, fmt: str
) -> None:
    async with run_simulated(
        [zai(FaultPlan([EndWithoutFinish(3)]), fmt), mirror(), cerebras()]
    ) as sims:
        proxy = await daemon(config_text(sims, MIRRORED, provider_extra=PREFILL))
        _, _, raw = await raw_stream(proxy, {"model": "auto", "messages": HELLO, "stream": True})
        assert len(sims["zai-mirror"].requests) == 1
    text = "".join(re.findall(r'"content":"([^"]*)"', raw.decode()))
    assert text == FULL_GLM_TEXT
    # One entry per try, as it ended (the cut try was once recorded twice: `ok` at its commit
    # point, then `stream_cut`).
    assert trailer(raw, "x-llmproxy-attempts") == "zai,glm-5=stream_cut;zai-mirror,glm-5=ok"


# --- the usage a client sees after a takeover ----------------------------------------------------


async def test_a_takeover_reports_the_prompt_once_and_adds_up_the_output(
    clients: Clients, daemon: StartDaemon
) -> None:
    # Claude Code sizes its context from these fields: a takeover must not double the prompt.
    async with run_simulated(
        [zai(FaultPlan([CutAfter(3)]), "anthropic"), mirror("anthropic"), cerebras()]
    ) as sims:
        proxy = await daemon(config_text(sims, MIRRORED))
        client = clients.anthropic(proxy)
        answers = []
        for _ in range(2):  # the first is cut and taken over, the second is not
            async with client.messages.stream(
                model="auto",
                max_tokens=512,
                messages=HELLO,  # type: ignore[arg-type]
            ) as stream:
                answers.append(await stream.get_final_message())
        cut_try, _ = sims["zai"].requests
        (takeover,) = sims["zai-mirror"].requests
    taken_over, clean = answers
    assert taken_over.content[0].text == clean.content[0].text == FULL_GLM_TEXT  # type: ignore[union-attr]

    def prompt(usage: anthropic.types.Usage) -> tuple[int, int, int]:
        return (
            usage.input_tokens,
            usage.cache_read_input_tokens or 0,
            usage.cache_creation_input_tokens or 0,
        )

    assert prompt(taken_over.usage) == prompt(clean.usage)
    assert clean.usage.input_tokens > 0
    partial = "".join(chunk(FULL_GLM_TEXT, DEFAULT_CHUNK_CHARS)[: cut_try.chunks_sent])
    # the cut try's output (never reported: estimated from what it streamed) and the rest's
    assert taken_over.usage.output_tokens == tokens_for_chars(len(partial)) + takeover.chunks_sent


# --- 6. the served model ----------------------------------------------------------------------


async def test_chunks_after_a_takeover_name_the_model_that_wrote_them(
    clients: Clients, daemon: StartDaemon
) -> None:
    other = mirror(models=("glm-5-turbo",))
    async with run_simulated([zai(FaultPlan.always(CutAfter(3))), other]) as sims:
        proxy = await daemon(
            config_text(
                sims, {"default": "zai,glm-5|zai-mirror,glm-5-turbo"}, provider_extra=PREFILL
            )
        )
        _, _, chunks = await ask_stream(clients.openai(proxy))
        _, _, raw = await raw_stream(proxy, {"model": "auto", "messages": HELLO, "stream": True})
    models = [c.model for c in chunks]  # type: ignore[attr-defined]
    assert models[0] == "glm-5"
    assert models[-1] == "glm-5-turbo"
    assert models == sorted(models, key=lambda m: m == "glm-5-turbo")  # one switch, no return
    assert trailer(raw, "x-llmproxy-served-by") == "zai-mirror,glm-5-turbo"


async def test_an_anthropic_stream_reports_the_takeover_model_in_its_trailer(
    daemon: StartDaemon,
) -> None:
    other = mirror("anthropic", models=("glm-5-turbo",))
    async with run_simulated([zai(FaultPlan([CutAfter(3)])), other]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|zai-mirror,glm-5-turbo"}))
        _, _, raw = await raw_stream(
            proxy,
            {"model": "auto", "max_tokens": 512, "messages": HELLO, "stream": True},
            path="/v1/messages",
        )
    # `message_start` went out before the takeover and names the first model; the trailer
    # names the one that finished the answer.
    assert b'"model":"glm-5"' in raw
    assert trailer(raw, "x-llmproxy-served-by") == "zai-mirror,glm-5-turbo"
