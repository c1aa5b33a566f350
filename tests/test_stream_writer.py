"""After `prepare()`, only the stream's owner writes, and only SSE events (issue 11, item 3):
an unexpected exception inside llmproxy ends the stream with the dialect's error event, and the
errors middleware never writes a second response into an open body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support import CLIENT_KEY, Daemon, config_text

from proxy.client_dialects import ANTHROPIC, OPENAI, ClientDialect
from proxy.fallback import Job
from proxy.handlers import INTERNAL, STREAM_STARTED, _stream
from proxy.midstream import StreamReport
from proxy.server import errors_middleware
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.summary import summarize
from proxy.types import (
    Attempt,
    ClientAPI,
    Decision,
    MessageStart,
    Scenario,
    StreamEvent,
    Target,
    TextDelta,
    Usage,
)

TARGET = Target("zai", "glm-5")
PROMPT = [{"role": "user", "content": "Tell me something in many small chunks."}]
StartDaemon = Callable[[str], Awaitable[Daemon]]


class BrokenLife:
    """A stream owner whose events hit a bug after some text (a fake, not a mock: it has the
    owner's read-outs and an event source)."""

    target = TARGET
    served = TARGET

    def attempts(self) -> tuple[Attempt, ...]:
        return (Attempt(TARGET, 200, None, 1.0),)

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        yield [MessageStart("m1", "glm-5"), TextDelta("Hello")]
        raise RuntimeError("a bug in llmproxy")

    def report(self) -> StreamReport:
        return StreamReport(self.attempts(), TARGET, TARGET, Usage(), Usage(), 1.0, finished=False)

    async def aclose(self) -> None:
        return None


def job_for(fmt: ClientAPI) -> Job:
    body = {
        "model": "auto",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    decision = Decision(Scenario.DEFAULT, "test", (TARGET,))
    return Job(fmt, body, summarize(body, fmt), decision, True)


async def serve(handler: web.Handler) -> tuple[TestServer, bytes, int]:
    app = web.Application(middlewares=[errors_middleware])
    app.router.add_post("/", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session, session.post(server.make_url("/")) as response:
        try:
            raw = await response.read()
        except aiohttp.ClientPayloadError:
            raw = b"<payload error>"
        return server, raw, response.status


async def test_an_unexpected_exception_after_prepare_ends_the_stream_with_an_error_event() -> None:
    for dialect, fmt in ((OPENAI, ClientAPI.OPENAI), (ANTHROPIC, ClientAPI.ANTHROPIC)):

        async def handler(
            request: web.Request, d: ClientDialect = dialect, f: ClientAPI = fmt
        ) -> web.StreamResponse:
            return await _stream(request, d, job_for(f), BrokenLife())  # type: ignore[arg-type]

        server, raw, status = await serve(handler)
        await server.close()
        assert status == 200
        assert b"HTTP/1.1" not in raw and b"Hello" in raw
        assert INTERNAL.encode() in raw
        if fmt is ClientAPI.OPENAI:
            assert b"[DONE]" not in raw
        else:
            assert b"event: error" in raw and b"message_stop" not in raw


async def test_the_errors_middleware_never_writes_into_a_started_stream() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        request[STREAM_STARTED] = True
        await response.write(b"data: {}\n\n")
        raise RuntimeError("escaped after the commit point")

    server, raw, status = await serve(handler)
    await server.close()
    assert status == 200
    assert b"HTTP/1.1" not in raw and b"internal error" not in raw


def watch_writes(monkeypatch: pytest.MonkeyPatch, port: int | None) -> list[bytes]:
    """What the daemon listening on `port` writes to its clients' sockets from here on, one
    item per transport call (a syscall), the transport wrapped, not replaced. The test loop is
    asyncio's own, whose socket transport this is."""
    writes: list[bytes] = []
    transport = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    write, writelines = transport.write, transport.writelines

    def ours(self: asyncio.Transport) -> bool:
        return bool(port) and self.get_extra_info("sockname")[1] == port

    joined: list[bool] = []  # inside writelines, which may call write itself

    def watched_write(self: asyncio.Transport, data: bytes) -> None:
        if ours(self) and not joined:
            writes.append(bytes(data))
        write(self, data)

    def watched_writelines(self: asyncio.Transport, lines: list[bytes]) -> None:
        if ours(self):
            writes.append(b"".join(lines))
        joined.append(True)
        try:
            writelines(self, lines)
        finally:
            joined.pop()

    monkeypatch.setattr(transport, "write", watched_write)
    monkeypatch.setattr(transport, "writelines", watched_writelines)
    return writes


async def raw_chunks(url: str, path: str, body: dict[str, object]) -> list[bytes]:
    """The HTTP/1.1 chunks of a response as they were framed on the wire (each `write()` of
    the daemon is one chunk)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = orjson.dumps(body)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
        f"x-api-key: {CLIENT_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + payload
    )
    raw = await reader.read()
    writer.close()
    head, rest = raw.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


async def test_what_one_upstream_read_delivered_leaves_in_one_write(
    daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: events that arrived in one read of the upstream leave in one write (a write is
    a syscall), and the stream's end (trailer comments, the dialect's last events) leaves with
    the body's terminating chunk. The first content is the exception: it leaves at once, with
    the response's headers, before the rest of its read is decoded (the time to first token
    does not grow with what the read held)."""
    sim = SimulatedProvider("zai", "openai", ["glm-5"], chunk_chars=2, burst=True)
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        for path, body in (
            ("/v1/chat/completions", {"model": "auto", "stream": True, "messages": PROMPT}),
            (
                "/v1/messages",
                {"model": "auto", "stream": True, "max_tokens": 64, "messages": PROMPT},
            ),
        ):
            writes = watch_writes(monkeypatch, proxy.server.port)
            chunks = await raw_chunks(proxy.url, path, body)
            # the headers leave with the first events: the chunks are all the writes
            assert len(writes) == 3 and writes[0].startswith(b"HTTP/1.1 200"), writes
            assert len(chunks) == 3, chunks  # the first content, the rest of the burst, the end
            first, burst, end = chunks
            assert first.count(b"data: ") <= 4, first  # the opening events and the first text
            assert burst.count(b"data: ") > 20, burst  # many events in one write
            assert b"x-llmproxy-served-by zai,glm-5" in end
            assert (b"[DONE]" if "chat" in path else b"message_stop") in end
