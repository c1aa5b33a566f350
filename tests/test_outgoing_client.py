"""The outgoing client (`proxy.security.http1`) against real servers on 127.0.0.1: scripted raw
asyncio servers that answer chunked, split, compressed, malformed or cut-short, close while
idle or mid-answer, and a TLS server. Each test names the guarantee of the module docstring it
holds to; the daemon's own tests run every provider call through the same client."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp.abc import AbstractResolver, ResolveResult
from security_support import FakeDNS
from yarl import URL

from proxy.errors import UpstreamConnectionError, UpstreamRefusedError
from proxy.providers.boundary import upstream_errors
from proxy.security import http1
from proxy.security.http1 import (
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
    BadResponse,
    Client,
    ConnectFailed,
    Disconnected,
    RedirectRefused,
)
from proxy.security.http1_wire import HIGH_WATER, MAX_GZIP_MEMBERS, HeaderRefused, Response
from proxy.security.outgoing import AnswerTooLarge, outgoing_client, read_capped
from proxy.security.resolver import GuardedResolver
from proxy.security.ssrf import DestinationRefused, NetworkPolicy

LOCAL = NetworkPolicy.build(True, False, ())
Script = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Answers request number n (from 1) given its head; False ends the connection."""


@dataclass
class Raw:
    """A scripted HTTP/1.1 server: counts connections, keeps every request, and notes when
    each connection ended."""

    script: Script
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    ended: list[asyncio.Event] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/v1/chat/completions", host: str = "127.0.0.1") -> URL:
        return URL(f"http://{host}:{self.port}{path}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ended = asyncio.Event()
        self.ended.append(ended)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.lower().split(b"\r\n"):
                        if line.startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.requests.append(head + body)
                if not await self.script(len(self.requests), head, writer):
                    break
        finally:
            ended.set()
            writer.close()


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[Raw]:
    raw = Raw(script)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    async with server:
        yield raw


@contextlib.asynccontextmanager
async def client(
    policy: NetworkPolicy = LOCAL, dns: AbstractResolver | None = None
) -> AsyncIterator[Client]:
    made = outgoing_client(lambda: policy, dns=dns)
    try:
        yield made
    finally:
        await made.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def always(data: bytes, n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(data)
    return True


def replying(data: bytes) -> Script:
    async def script(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return await always(data, n, head, writer)

    return script


async def whole(response: Response) -> bytes:
    parts = []
    while chunk := await response.readany():
        parts.append(chunk)
    response.release()
    return b"".join(parts)


async def post(made: Client, url: URL, body: bytes = b'{"a":1}') -> bytes:
    response = await made.request("POST", url, {"content-type": "application/json"}, body)
    return await whole(response)


# --- bodies: length, chunked, close-delimited, compressed ----------------------------------------


async def test_a_chunked_answer_split_byte_by_byte_is_read_whole_and_the_connection_kept() -> None:
    data = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(b"hello ", b"world")

    async def slowly(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async with serving(slowly) as raw, client() as made:
        first = await post(made, raw.url())
        second = await post(made, raw.url())
    assert first == second == b"hello world"
    assert raw.connections == 1 and len(raw.requests) == 2


async def test_the_request_is_one_well_formed_http_1_1_message() -> None:
    async with serving(replying(answer(b"{}"))) as raw, client() as made:
        response = await made.request(
            "POST", raw.url("/v1/messages?beta=true"), {"x-api-key": "k"}, b'{"q":1}'
        )
        await whole(response)
    head, _, body = raw.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/messages?beta=true HTTP/1.1"
    assert f"Host: 127.0.0.1:{raw.port}".encode() in lines
    assert b"x-api-key: k" in lines and b"Content-Length: 7" in lines
    assert b"Accept-Encoding: gzip, deflate" in lines
    assert not any(line.lower().startswith((b"cookie", b"proxy-")) for line in lines)
    assert body == b'{"q":1}'


async def test_a_close_delimited_answer_ends_with_the_connection() -> None:
    async def then_close(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        await writer.drain()
        return False

    async with serving(then_close) as raw, client() as made:
        assert await post(made, raw.url()) == b"until the end"
        assert await post(made, raw.url()) == b"until the end"
    assert raw.connections == 2  # such a connection is never reused


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
async def test_compressed_bodies_are_decoded(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    text = b'{"choices": []}' * 200
    packed = compress(text)
    whole_body = answer(packed, f"content-encoding: {encoding}")
    in_chunks = (
        f"HTTP/1.1 200 OK\r\ncontent-encoding: {encoding}\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode() + chunked(*(packed[i : i + 7] for i in range(0, len(packed), 7)))
    async with serving(replying(whole_body)) as raw, client() as made:
        assert await post(made, raw.url()) == text
    async with serving(replying(in_chunks)) as raw, client() as made:
        assert await post(made, raw.url()) == text


async def test_large_bodies_go_out_and_come_back_whole() -> None:
    """A request body handed to the socket beside its head, and an answer larger than what is
    buffered before reading pauses (it resumes as the reader catches up)."""
    big = bytes(range(256)) * 20_000  # 5 MB
    async with serving(replying(answer(big))) as raw, client() as made:
        sent = b'{"pad":"' + b"x" * 1_000_000 + b'"}'
        async with asyncio.timeout(10):
            response = await made.request("POST", raw.url(), {}, sent)
            await asyncio.sleep(0.3)  # unread: the socket is read only up to the high-water mark
            received = [response.read_nowait()]
            assert HIGH_WATER <= len(received[0]) < len(big)
            while chunk := await response.readany():
                received.append(chunk)
                await asyncio.sleep(0)  # a slow reader
            response.release()
            assert await post(made, raw.url()) == big  # and the connection was kept
    assert b"".join(received) == big
    assert raw.requests[0].endswith(sent) and raw.connections == 1


async def test_a_body_that_does_not_decode_is_a_bad_response() -> None:
    broken = answer(b"not gzip at all", "content-encoding: gzip")
    async with serving(replying(broken)) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(BadResponse, match="does not decode"):
            await whole(response)


async def test_a_gzip_body_of_several_members_is_read_whole() -> None:
    packed = gzip.compress(b'{"choices":') + gzip.compress(b"[]}") + b"\0\0"  # zero padding
    async with serving(replying(answer(packed, "content-encoding: gzip"))) as raw, client() as made:
        assert await post(made, raw.url()) == b'{"choices":[]}'
        assert await post(made, raw.url()) == b'{"choices":[]}'
    assert raw.connections == 1
    too_many = gzip.compress(b"x") * (MAX_GZIP_MEMBERS + 1)
    gzip_bomb = answer(too_many, "content-encoding: gzip")
    async with serving(replying(gzip_bomb)) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(BadResponse, match="gzip members"):
            await whole(response)


async def test_a_compressed_body_is_inflated_no_faster_than_it_is_read() -> None:
    """8 MiB of zeros in about 8 KB: the reader gets it whole, never more than the high-water
    mark at once, and the connection is reused after it."""
    text = b"\0" * (8 * 1024 * 1024)
    packed = answer(gzip.compress(text), "content-encoding: gzip")
    async with serving(replying(packed)) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        parts = []
        while chunk := await response.readany():
            parts.append(chunk)
            await asyncio.sleep(0)
        response.release()
        assert b"".join(parts) == text
        assert max(map(len, parts)) <= 1024 * 1024 == HIGH_WATER and len(parts) >= 8
        assert await post(made, raw.url()) == text
    assert raw.connections == 1


async def test_a_decompression_bomb_stays_near_the_answer_cap() -> None:
    bomb = gzip.compress(b"\0" * (100 * 1024 * 1024), compresslevel=9)  # about 100 KB
    async with serving(replying(answer(bomb, "content-encoding: gzip"))) as raw, client() as made:
        tracemalloc.start()
        try:
            response = await made.request("POST", raw.url(), {}, b"{}")
            with pytest.raises(AnswerTooLarge):
                await read_capped(response, 1024 * 1024)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a 1 MiB cap"


async def test_chunked_trailers_never_become_the_next_answer_s_headers() -> None:
    async def script(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n"
                b"2\r\n{}\r\n0\r\ncontent-encoding: gzip\r\nretry-after: 60\r\nx-t: 1\r\n\r\n"
            )
        else:
            writer.write(answer(b'{"plain":1}'))
        return True

    async with serving(script) as raw, client() as made:
        first = await made.request("POST", raw.url(), {}, b"{}")
        assert await whole(first) == b"{}"
        second = await made.request("POST", raw.url(), {}, b"{}")
        assert await whole(second) == b'{"plain":1}'
    assert raw.connections == 1
    for response in (first, second):
        assert not {"x-t", "retry-after", "content-encoding"} & response.headers.keys()


# --- broken answers ---------------------------------------------------------------------------


async def test_a_malformed_answer_is_a_bad_response_and_a_connection_failure() -> None:
    async with serving(replying(b"HTTP/1.1 OK maybe\r\n\r\n")) as raw, client() as made:
        with pytest.raises(BadResponse):
            await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(UpstreamConnectionError), upstream_errors(None, "response headers"):
            await made.request("POST", raw.url(), {}, b"{}")


async def test_an_answer_cut_mid_body_fails_after_what_arrived() -> None:
    async def cut(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()
        return False

    async with serving(cut) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        assert await response.readany() == b"0123456789"
        with pytest.raises(Disconnected, match="mid-answer"):
            await response.readany()
        response.close()


async def test_a_new_connection_closed_before_answering_is_not_retried() -> None:
    async def hang_up(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return False

    async with serving(hang_up) as raw, client() as made:
        with pytest.raises(Disconnected, match="no answer"):
            await made.request("POST", raw.url(), {}, b"{}")
    assert raw.connections == 1 and len(raw.requests) == 1


async def test_a_second_answer_to_one_request_drops_the_connection() -> None:
    twice = answer(b"{}") + answer(b'{"again":1}')
    async with serving(replying(twice)) as raw, client() as made:
        assert await post(made, raw.url()) == b"{}"
        assert await post(made, raw.url()) == b"{}"
    assert raw.connections == 2


async def test_an_interim_100_answer_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"ok":1}')
    async with serving(replying(data)) as raw, client() as made:
        assert await post(made, raw.url()) == b'{"ok":1}'


async def test_an_endless_header_section_is_refused() -> None:
    async def huge(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n")
        for _ in range(400):  # 40 MB of one repeated header, unless the client stops reading
            writer.write(b"x-pad: " + b"a" * 100_000 + b"\r\n")
            await writer.drain()
        writer.write(b"\r\n{}")
        return True

    async with serving(huge) as raw, client() as made:
        with pytest.raises(BadResponse, match="head or trailers over"):
            async with asyncio.timeout(20):
                await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(UpstreamConnectionError), upstream_errors(None, "response headers"):
            await made.request("POST", raw.url(), {}, b"{}")


async def test_endless_trailers_are_refused() -> None:
    async def trailing(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nx-t: ")
        for _ in range(400):  # one trailer line of 40 MB, unless the client stops reading
            writer.write(b"a" * 100_000)
            await writer.drain()
        writer.write(b"\r\n\r\n")
        return True

    async with serving(trailing) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(BadResponse, match="head or trailers over"):
            async with asyncio.timeout(20):
                await whole(response)


async def test_an_answer_with_too_many_header_fields_is_refused() -> None:
    assert MAX_HEADER_FIELDS == 128 and MAX_HEAD_BYTES == 64 * 1024  # as the README says
    many = [f"x-f{i}: v" for i in range(MAX_HEADER_FIELDS)]
    async with serving(replying(answer(b"{}", *many))) as raw, client() as made:
        with pytest.raises(BadResponse, match="header fields"):
            await made.request("POST", raw.url(), {}, b"{}")
    fitting = [f"x-f{i}: v" for i in range(MAX_HEADER_FIELDS - 2)]  # with type and length
    async with serving(replying(answer(b"{}", *fitting))) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        assert await whole(response) == b"{}" and len(response.headers) == MAX_HEADER_FIELDS


async def test_a_close_delimited_answer_cut_by_a_reset_is_not_complete() -> None:
    async def reset(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {"a"')
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN
        return False

    async with serving(reset) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        assert await response.readany() == b'data: {"a"'
        with pytest.raises(Disconnected, match="broke mid-answer"):
            await response.readany()
        response.close()


async def test_closing_the_client_mid_answer_is_not_a_clean_end() -> None:
    async def forever(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n")
        await asyncio.sleep(5)
        return False

    async with serving(forever) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        assert await response.readany() == b"data: 1\n\n"
        await made.close()  # the daemon stopping
        with pytest.raises(Disconnected, match="llmproxy closed"):
            async with asyncio.timeout(2):
                await response.readany()


async def test_a_head_answer_has_no_body() -> None:
    declared = answer(b"", "x: y").replace(b"length: 0", b"length: 9")

    async def script(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(declared if head.startswith(b"HEAD") else answer(b""))
        return True

    async with serving(script) as raw, client() as made:
        async with asyncio.timeout(2):
            response = await made.request("HEAD", raw.url(), {})
            assert await whole(response) == b""
            assert response.status == 200 and response.content_length == 9
            assert await post(made, raw.url()) == b""  # a new connection: the old one is dropped
    assert raw.connections == 2 and raw.requests[0].startswith(b"HEAD /v1/chat/completions")


# --- the pool -----------------------------------------------------------------------------------


async def test_a_connection_is_reused_only_after_its_answer_was_read_whole() -> None:
    async with serving(replying(answer(b"x" * 1000))) as raw, client() as made:
        unread = await made.request("POST", raw.url(), {}, b"{}")
        unread.release()  # not read: the connection cannot carry another answer
        async with asyncio.timeout(2):
            await raw.ended[0].wait()
        assert await post(made, raw.url()) == b"x" * 1000
        assert await post(made, raw.url()) == b"x" * 1000
    assert raw.connections == 2 and len(raw.requests) == 3


async def test_a_pooled_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def close_after_answering(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b'{"n":%d}' % n))
        await writer.drain()
        return False

    async with serving(close_after_answering) as raw, client() as made:
        assert await post(made, raw.url()) == b'{"n":1}'
        async with asyncio.timeout(2):
            await raw.ended[0].wait()
        await asyncio.sleep(0.05)
        assert await post(made, raw.url()) == b'{"n":2}'
    assert raw.connections == 2 and len(raw.requests) == 2


async def test_a_close_the_event_loop_has_not_handled_yet_is_seen_before_reuse() -> None:
    """The server's FIN is in the socket, but the loop has not run since (a busy daemon): the
    readiness check before reuse sees it, and the request goes on a new connection instead of
    into one already gone (where it would fail: it is never sent twice)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []
    may_close = threading.Event()
    closed = threading.Event()

    def serve() -> None:
        for n in (1, 2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b'"a":1}' not in data:
                    data += conn.recv(65536)
                received.append(data)
                conn.sendall(answer(b'{"n":%d}' % n))
                if n == 1:
                    may_close.wait(5)
            closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = URL(f"http://127.0.0.1:{port}/v1/chat/completions")
    try:
        async with client() as made:
            assert await post(made, url) == b'{"n":1}'
            may_close.set()
            assert closed.wait(5)  # blocking: the loop does not run until the request below
            time.sleep(0.05)  # noqa: ASYNC251 (the loop must not run: that is the case tested)
            assert await post(made, url) == b'{"n":2}'
    finally:
        may_close.set()
        thread.join(5)
        listener.close()
    assert len(received) == 2


async def test_a_request_the_upstream_may_have_received_is_never_sent_twice() -> None:
    """An LLM request is not idempotent: the upstream that read it and then hung up may have
    generated (and billed) the answer. Its connection error goes to the fallback chain."""

    async def second_dies_after_work(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            await asyncio.sleep(0.3)  # read the request, worked on it, then crashed: no byte
            return False
        writer.write(answer(b'{"n":%d}' % n))
        return True

    async with serving(second_dies_after_work) as raw, client() as made:
        assert await post(made, raw.url(), b'{"prompt":"first"}') == b'{"n":1}'
        with pytest.raises(UpstreamConnectionError), upstream_errors(None, "response headers"):
            await post(made, raw.url(), b'{"prompt":"second"}')
        assert await post(made, raw.url(), b'{"prompt":"third"}') == b'{"n":3}'
    prompts = [r.partition(b"\r\n\r\n")[2] for r in raw.requests]
    assert prompts == [b'{"prompt":"first"}', b'{"prompt":"second"}', b'{"prompt":"third"}']
    assert raw.connections == 2


async def test_an_abandoned_answer_closes_its_connection_at_once() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )

    async def stream_forever(n: int, _: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(head + b"%x\r\n%s\r\n" % (12, b"data: one\n\n\n"))
        return True  # and nothing more: the client must hang up

    async with serving(stream_forever) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        assert await response.readany() == b"data: one\n\n\n"
        response.close()
        async with asyncio.timeout(1):
            await raw.ended[0].wait()

        response = await made.request("POST", raw.url(), {}, b"{}")
        reading = asyncio.create_task(response.readany())
        assert await reading == b"data: one\n\n\n"
        reading = asyncio.create_task(response.readany())
        await asyncio.sleep(0.05)
        reading.cancel()  # a cancelled reader: its owner closes the answer
        with pytest.raises(asyncio.CancelledError):
            await reading
        response.close()
        async with asyncio.timeout(1):
            await raw.ended[1].wait()


async def test_a_request_cancelled_before_its_answer_closes_its_connection() -> None:
    async def never(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        return True

    async with serving(never) as raw, client() as made:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await made.request("POST", raw.url(), {}, b"{}")
        async with asyncio.timeout(1):
            await raw.ended[0].wait()


async def test_a_connection_that_talks_while_idle_is_not_reused() -> None:
    async def chatty(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"{}"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"unrequested bytes")
        return True

    async with serving(chatty) as raw, client() as made:
        assert await post(made, raw.url()) == b"{}"
        await asyncio.sleep(0.2)
        assert await post(made, raw.url()) == b"{}"
    assert raw.connections == 2


async def test_an_idle_connection_is_closed_after_the_idle_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert http1.IDLE_SECONDS == 15  # as the README says; shortened here
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.2)
    async with serving(replying(answer(b"{}"))) as raw, client() as made:
        assert await post(made, raw.url()) == b"{}"
        assert await post(made, raw.url()) == b"{}"  # kept: a new idle period
        started = time.monotonic()
        async with asyncio.timeout(2):
            await raw.ended[0].wait()  # closed with no further request to its origin
        assert time.monotonic() - started >= 0.15
        assert await post(made, raw.url()) == b"{}"
    assert raw.connections == 2


# --- what is refused before anything is sent -----------------------------------------------------


async def test_a_redirect_is_refused_never_followed() -> None:
    async with serving(replying(answer(b"{}"))) as elsewhere:
        moved = answer(b"", f"location: {elsewhere.url()}", status="307 Temporary Redirect")
        async with serving(replying(moved)) as raw, client() as made:
            with pytest.raises(RedirectRefused, match="307"):
                await made.request("POST", raw.url(), {"authorization": "Bearer k"}, b"{}")
            with (
                pytest.raises(UpstreamRefusedError, match="redirect"),
                upstream_errors(None, "response headers"),
            ):
                await made.request("POST", raw.url(), {}, b"{}")
    assert elsewhere.connections == 0


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\x00b", "a\x7fb", "a\x01b"])
async def test_a_header_with_a_control_character_is_refused_before_sending(value: str) -> None:
    async with serving(replying(answer(b"{}"))) as raw, client() as made:
        with pytest.raises(HeaderRefused):
            await made.request("POST", raw.url(), {"x-title": value}, b"{}")
        with pytest.raises(HeaderRefused):
            await made.request("POST", raw.url(), {f"x{value}": "v"}, b"{}")
        tabbed = await made.request("POST", raw.url(), {"x-title": "a\tb"}, b"{}")
        assert await whole(tabbed) == b"{}"
    assert len(raw.requests) == 1 and b"x-title: a\tb\r\n" in raw.requests[0]


async def test_a_header_byte_a_client_sent_leaves_as_that_byte() -> None:
    """aiohttp's server hands a client's non-UTF-8 header byte over as a surrogate."""
    async with serving(replying(answer(b"{}"))) as raw, client() as made:
        response = await made.request("POST", raw.url(), {"anthropic-beta": "beta\udcff"}, b"{}")
        assert await whole(response) == b"{}"
        with (
            pytest.raises(UpstreamRefusedError, match="cannot be sent"),
            upstream_errors(None, "response headers"),
        ):
            await made.request("POST", raw.url(), {"x-title": "lone \ud800"}, b"{}")
    assert b"\r\nanthropic-beta: beta\xff\r\n" in raw.requests[0] and len(raw.requests) == 1


async def test_an_ip_literal_is_judged_on_every_request_under_the_policy_in_force() -> None:
    policy = [LOCAL]
    async with serving(replying(answer(b"{}"))) as raw:
        made = outgoing_client(lambda: policy[0])
        try:
            assert await post(made, raw.url()) == b"{}"
            policy[0] = NetworkPolicy.build(False, False, ())  # a reload withdraws loopback
            with pytest.raises(DestinationRefused):
                await post(made, raw.url())  # though a kept connection would do
            with pytest.raises(DestinationRefused):
                await post(made, raw.url(host="[::ffff:127.0.0.1]"))
        finally:
            await made.close()
    assert len(raw.requests) == 1


# --- resolving and connecting -------------------------------------------------------------------


async def test_host_names_resolve_through_the_guard_and_are_kept() -> None:
    async def close_each(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"{}", "connection: close"))
        return False

    dns = FakeDNS(
        {
            "llm.test": ["127.0.0.1"],
            "rebind.test": ["127.0.0.1", "169.254.169.254"],
            "gone.test": [],
        }
    )
    async with serving(close_each) as raw, client(dns=dns) as made:
        for _ in range(3):  # three new connections, one lookup
            assert await post(made, raw.url(host="llm.test")) == b"{}"
        assert dns.lookups == ["llm.test"]
        made.clear_dns_cache()
        assert await post(made, raw.url(host="llm.test")) == b"{}"
        assert dns.lookups == ["llm.test", "llm.test"]
        with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254"):
            await post(made, raw.url(host="rebind.test"))
        with pytest.raises(ConnectFailed):
            await post(made, raw.url(host="missing.test"))
        with pytest.raises(ConnectFailed, match="resolves to nothing"):
            await post(made, raw.url(host="gone.test"))
    assert raw.connections == 4
    assert b"Host: llm.test:" in raw.requests[0]


async def test_nobody_listening_is_a_connect_failure() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with client() as made:
        with pytest.raises(ConnectFailed) as failed:
            await post(made, URL(f"http://127.0.0.1:{port}/v1"))
    assert isinstance(failed.value.os_error, ConnectionRefusedError)


async def test_an_address_that_never_answers_does_not_cost_the_whole_connect_limit() -> None:
    """The first address drops every SYN (a full accept queue): the second is tried 0.25 s
    later and wins, well within the 5 s limit. Addresses that refuse are passed at once."""
    async with serving(replying(answer(b"{}"))) as raw:
        with contextlib.ExitStack() as sockets:
            hole = sockets.enter_context(socket.socket())
            hole.bind(("127.0.0.2", raw.port))
            hole.listen(0)
            for _ in range(3):  # fill the accept queue: further SYNs are dropped
                filler = sockets.enter_context(socket.socket())
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.2", raw.port))
            dns = FakeDNS({"llm.test": ["127.0.0.2", "127.0.0.1"]})
            made = Client(lambda url: None, dns, connect_timeout=5)
            try:
                started = time.monotonic()
                assert await post(made, raw.url(host="llm.test")) == b"{}"
                assert time.monotonic() - started < 2.5
            finally:
                await made.close()
    assert raw.connections == 1
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dns = FakeDNS({"none.test": ["127.0.0.2", "127.0.0.1"]})
    async with client(dns=dns) as made:
        with pytest.raises(ConnectFailed) as failed:
            await post(made, URL(f"http://none.test:{port}/v1"))
    assert isinstance(failed.value.os_error, ConnectionRefusedError)


async def test_the_connections_that_lose_the_race_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1, "HAPPY_EYEBALLS_DELAY", 0)  # both addresses at once: both connect
    async with serving(replying(answer(b"{}"))) as raw:
        second = await asyncio.start_server(raw.handle, "127.0.0.2", raw.port)
        async with second, client(dns=FakeDNS({"llm.test": ["127.0.0.1", "127.0.0.2"]})) as made:
            assert await post(made, raw.url(host="llm.test")) == b"{}"
            await asyncio.sleep(0.5)
            assert raw.connections == 2
            assert sum(ended.is_set() for ended in raw.ended) == 1  # the loser, closed
            assert await post(made, raw.url(host="llm.test")) == b"{}"  # on the winner
    assert raw.connections == 2 and len(raw.requests) == 2


class SlowDNS(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        await asyncio.sleep(30)
        return []

    async def close(self) -> None:
        return None


async def test_connecting_is_bounded_by_the_connect_timeout() -> None:
    async with client(dns=SlowDNS()) as made:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await made.request("POST", URL("http://llm.test/v1"), {}, b"{}", connect_timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2


async def test_the_environment_s_proxy_settings_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    async with serving(replying(answer(b"{}"))) as raw, client() as made:
        assert await post(made, raw.url()) == b"{}"
    assert raw.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1")


# --- TLS ------------------------------------------------------------------------------------------


async def test_https_is_verified_with_sni() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("llm.test").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,misc,func-returns-value]
    raw = Raw(replying(answer(b'{"tls":1}')))
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=server_context)
    raw.port = server.sockets[0].getsockname()[1]
    url = URL(f"https://llm.test:{raw.port}/v1/chat/completions")
    dns = FakeDNS({"llm.test": ["127.0.0.1"]})
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with server:
        verified = Client(
            lambda url: None,
            GuardedResolver(lambda: LOCAL, dns),
            connect_timeout=5,
            ssl_context=trusting,
        )
        system = Client(lambda url: None, GuardedResolver(lambda: LOCAL, dns), connect_timeout=5)
        try:
            assert await post(verified, url) == b'{"tls":1}'
            with pytest.raises(ConnectFailed, match="TLS"):
                await post(system, url)  # the test CA is not in the system's trust store
            with (
                pytest.raises(UpstreamRefusedError, match="certificate could not be verified"),
                upstream_errors(None, "response headers"),
            ):
                await post(system, url)
        finally:
            await verified.close()
            await system.close()
    assert names[0] == "llm.test"
    assert raw.requests and raw.requests[0].startswith(b"POST /v1/chat/completions")
