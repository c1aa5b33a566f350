"""Hostile input through the real daemon: oversized, slow, deeply nested, mis-encoded and
mistyped bodies each get a clear 4xx in the client's dialect, and the daemon keeps serving.
Ends with a bounded hypothesis fuzz run against both endpoints."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from raw_http import RawResponse, post
from security_support import Apps, DaemonThread, anthropic_error, openai_error
from support import CLIENT_KEY, config_text

from proxy.config import parse_config
from proxy.security.limits import (
    BODY_SIZE,
    LARGE_BODY,
    WALKED_BYTES,
    exceeds_depth,
    nests_deeper,
    off_loop,
)
from proxy.simulate import SimulatedProvider, run_simulated

LIMITS = "[security.limits]\nmax_body_bytes = 65536\nbody_read_timeout_ms = 300\n"
PATHS = ("/v1/chat/completions", "/v1/messages")
FUZZ_PATHS = (*PATHS, "/v1/responses")


def sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"]),
    ]


def daemon_text(running: dict[str, SimulatedProvider]) -> str:
    return (
        config_text(
            running, {"default": "zai,glm-5"}, mappings=[("claude-*", "minimax,MiniMax-M2")]
        )
        + LIMITS
    )


def dialect_error(path: str, response: RawResponse) -> dict[str, Any]:
    assert response.content_type == "application/json", response.body[:200]
    return anthropic_error(response) if path == "/v1/messages" else openai_error(response)


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


def nested(depth: int) -> bytes:
    inner = b"[" * depth + b"]" * depth
    return b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "x": ' + inner + b"}"


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "empty"),
    ("garbage", b"\x00\x01garbage", 400, "not valid"),
    ("truncated", b'{"model": "auto", "messages": [', 400, "not valid JSON"),
    (
        "invalid-utf8",
        b'{"model": "auto", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        400,
        "not valid UTF-8",
    ),
    (
        "lone-surrogate",
        b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
        400,
        "not valid JSON",
    ),
    ("deep-200", nested(200), 400, "nests deeper than 128"),
    ("deep-5000", nested(5000), 400, "nest"),
    ("array", b"[1, 2, 3]", 400, "JSON object"),
    (
        "infinite-number",
        b'{"model": "auto", "messages": [], "max_tokens": 1e400}',
        400,
        "not valid JSON",
    ),
    ("null", b"null", 400, "JSON object"),
    ("model-int", b'{"model": 5, "messages": []}', 400, "model"),
    ("messages-str", b'{"model": "auto", "messages": "hi"}', 400, "messages"),
    (
        "message-not-object",
        b'{"model": "auto", "max_tokens": 5, "messages": [1]}',
        400,
        "messages[0]",
    ),
    (
        "type-list",  # found by the fast walk, named by the slow one
        b'{"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "a"}, {"type": ["text"], "text": "b"}]}]}',
        400,
        "'messages[0].content[1].type' must be a string",
    ),
    (
        "role-object",
        b'{"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "a", "role": {"x": 1}}]}]}',
        400,
        "'messages[0].content[0].role' must be a string",
    ),
    (
        "stream-str",
        b'{"model": "auto", "max_tokens": 5, "stream": "yes", "messages": '
        b'[{"role": "user", "content": "hi"}]}',
        400,
        "stream",
    ),
    ("too-large", b'{"model": "auto", "pad": "' + b"a" * 70000 + b'"}', 413, "exceeds 65536"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "message"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
@pytest.mark.parametrize("path", PATHS)
async def test_bad_bodies_get_a_clear_4xx(
    apps: Apps, name: str, body: bytes, status: int, message: str, path: str
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(daemon_text(running), {}))
        response = await post(proxy.url + path, body)
        assert response.status == status, response.body[:300]
        assert message in dialect_error(path, response)["message"]
        healthy = await post(
            proxy.url + path,
            {"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert healthy.status == 200


async def test_chunked_body_over_the_limit(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(daemon_text(running), {}))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 10000

        async with (
            aiohttp.ClientSession() as session,
            session.post(
                proxy.url + "/v1/messages",
                data=chunks(),
                headers={"x-api-key": CLIENT_KEY, "content-type": "application/json"},
            ) as raw,
        ):
            response = RawResponse(
                raw.status, raw.content_type, await raw.read(), dict(raw.headers)
            )
    assert response.status == 413
    assert anthropic_error(response)["type"] == "request_too_large"


async def test_slow_client_gets_408_and_others_are_served(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(daemon_text(running), {}))
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n"
            + f"x-api-key: {CLIENT_KEY}\r\n\r\n".encode()
            + b'{"model": '
        )
        await writer.drain()
        other = await post(
            proxy.url + "/v1/chat/completions",
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert other.status == 200  # served while the slow client dawdles
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.read()
        writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert b"request body not received within 0.3s" in body


async def test_huge_strings_are_fine_within_the_limit(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(daemon_text(running), {}))
        content = "word " * 12000
        ok = await post(
            proxy.url + "/v1/chat/completions",
            {"model": "auto", "messages": [{"role": "user", "content": content}]},
        )
        assert ok.status == 200
        longest = await post(
            proxy.url + "/v1/messages",
            {"model": "m" * 256, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert longest.status == 200  # an unknown model name takes the default route
        too_long = await post(
            proxy.url + "/v1/messages",
            {"model": "m" * 257, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert too_long.status == 400
        assert orjson.loads(too_long.body)["error"]["message"].startswith("'model' is 257")


# --- fuzz --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_daemon() -> Iterator[DaemonThread]:
    with DaemonThread(sims(), daemon_text) as running:
        yield running


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
ROLES = st.sampled_from(["user", "assistant", "system", "tool", "developer", "function", ""])
CONTENT = (
    st.text(max_size=200)
    | JSON
    | st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    [
                        "text",
                        "image",
                        "image_url",
                        "tool_use",
                        "tool_result",
                        "thinking",
                        "document",
                        "input_audio",
                        "bogus",
                    ]
                )
            },
            optional={
                "text": JSON,
                "id": JSON,
                "name": JSON,
                "input": JSON,
                "content": JSON,
                "source": JSON,
                "image_url": JSON,
                "tool_use_id": JSON,
                "thinking": JSON,
                "signature": JSON,
                "cache_control": JSON,
            },
        ),
        max_size=4,
    )
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES, "content": CONTENT},
    optional={"tool_calls": JSON, "tool_call_id": JSON, "name": JSON, "reasoning_content": JSON},
)
REQUEST = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["auto", "claude-sonnet-4-5", "zai,glm-5", "minimax,MiniMax-M2"])
        | st.text(max_size=30)
        | JSON,
        "messages": st.lists(MESSAGE, max_size=4) | JSON,
    },
    optional={
        "max_tokens": st.integers(-5, 100) | JSON,
        "stream": st.booleans() | JSON,
        "system": CONTENT,
        "tools": JSON
        | st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=10), "input_schema": JSON, "type": JSON}
            ),
            max_size=2,
        ),
        "tool_choice": JSON,
        "temperature": JSON,
        "thinking": JSON,
        "metadata": JSON,
        "stop": JSON,
        "stop_sequences": JSON,
        "response_format": JSON,
        "reasoning_effort": JSON,
        "stream_options": JSON,
        "n": JSON,
    },
)
BODIES = st.one_of(
    REQUEST.map(orjson.dumps),
    JSON.map(orjson.dumps),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 300).map(nested),
    REQUEST.map(lambda r: orjson.dumps(r).replace(b'"auto"', b'"\xff\xfe"')),
    st.integers(1000, 60000).map(
        lambda n: (
            b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"z" * n + b'"}]}'
        )
    ),
)


@pytest.mark.slow
@settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(path=st.sampled_from(FUZZ_PATHS), body=BODIES)
def test_fuzz_never_5xx(fuzz_daemon: DaemonThread, path: str, body: bytes) -> None:
    status, content_type, raw = fuzz_daemon.send(path, body)
    event(f"HTTP {status}")
    assert status < 500, (status, body[:300], raw[:500])
    if status >= 400:
        assert content_type.startswith("application/json"), raw[:200]
        error = orjson.loads(raw)
        if path == "/v1/messages":
            assert error["type"] == "error" and isinstance(error["error"]["message"], str)
        else:
            assert isinstance(error["error"]["message"], str)
    assert fuzz_daemon.send("/health", None, "GET")[0] == 200


@pytest.mark.parametrize("path", FUZZ_PATHS)
def test_daemon_still_serves_after_the_fuzz_run(fuzz_daemon: DaemonThread, path: str) -> None:
    body: dict[str, Any] = {
        "model": "auto",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "still?"}],
    }
    if path == "/v1/responses":
        body = {"model": "auto", "input": "still?"}
    status, _, raw = fuzz_daemon.send(path, orjson.dumps(body))
    assert status == 200, raw


def test_fuzz_finding_unhashable_tool_type(fuzz_daemon: DaemonThread) -> None:
    body = (
        b'{"model": "auto", "messages": [], "max_tokens": 1, "tools": [{"name": "t", '
        b'"input_schema": {}, "type": []}]}'
    )
    status, _, raw = fuzz_daemon.send("/v1/messages", body)
    assert status < 500, raw


# --- large bodies off the event loop ------------------------------------------------------------


async def test_large_bodies_are_worked_on_off_the_loop() -> None:
    here = threading.get_ident()
    small: Any = {BODY_SIZE: LARGE_BODY - 1}  # off_loop reads the request like a mapping
    large: Any = {BODY_SIZE: LARGE_BODY}
    assert await off_loop(small, threading.get_ident) == here
    assert await off_loop(large, threading.get_ident) != here


async def test_four_large_bodies_and_small_requests_are_all_served(apps: Apps) -> None:
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(config_text(running, {"default": "zai,glm-5"}), {}))
        content = "All work and no play. " * (6 * 1024 * 1024 // 22)  # about 6 MiB each
        body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": content}]})

        async def send_large() -> RawResponse:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    proxy.url + "/v1/chat/completions",
                    data=io.BytesIO(body),
                    headers={"content-type": "application/json", "x-api-key": CLIENT_KEY},
                ) as response,
            ):
                return RawResponse(
                    response.status,
                    response.content_type,
                    await response.read(),
                    dict(response.headers),
                )

        large = [send_large() for _ in range(4)]
        small = [
            post(
                proxy.url + "/v1/messages/count_tokens",
                {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            )
            for _ in range(20)
        ]
        answers = await asyncio.gather(*large, *small)
    assert [a.status for a in answers] == [200] * 24


@pytest.mark.parametrize("depth", [1, 2, 127, 128, 129, 200, 1000])
def test_the_parsed_body_walk_judges_depth_as_the_byte_passes_do(depth: int) -> None:
    """Issue 16: bodies up to `WALKED_BYTES` are judged on the parsed value (cheaper than the
    passes over every byte); both checks agree, whatever strings hold."""
    for text in (
        nested(depth),
        b'{"a": ' + b'{"k": "[[{{\\"", "v": ' * depth + b"1" + b"}" * depth + b"}",
        b'"[[{{"',  # a bare string: no container at all
        b"[1, " + b'"x", ' * depth + b"[[2]]]",
    ):
        for limit in (depth - 1, depth, depth + 1):
            assert nests_deeper(orjson.loads(text), limit) == exceeds_depth(text, limit)


@pytest.mark.parametrize("pad", [0, WALKED_BYTES])
async def test_too_deep_is_refused_below_and_above_the_walked_size(apps: Apps, pad: int) -> None:
    """Issue 16: below `WALKED_BYTES` the parsed body is walked, above it the text is judged
    before parsing; either way 129 levels get the same 400, and 128 pass. Beyond orjson's own
    limit (1024 levels) too, the refusal names the configured one."""
    async with run_simulated(sims()) as running:
        proxy = await apps.start(parse_config(config_text(running, {"default": "zai,glm-5"}), {}))
        for depth, status in ((129, 400), (128, 200), (2000, 400)):
            inner = b"[" * (depth - 1) + b"]" * (depth - 1)  # the body's own object is a level
            body = (
                b'{"model": "auto", "pad": "' + b"[{" * (pad // 2) + b'", "messages": '
                b'[{"role": "user", "content": "hi"}], "x": ' + inner + b"}"
            )
            assert (len(body) > WALKED_BYTES) == bool(pad)
            response = await post(proxy.url + "/v1/chat/completions", body)
            assert response.status == status, response.body[:300]
            if status == 400:
                assert "nests deeper than 128 levels" in openai_error(response)["message"]
