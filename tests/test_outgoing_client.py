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
from proxy.security.http1 import (
    BadResponse,
    Client,
    ConnectFailed,
    Disconnected,
    HeaderRefused,
    RedirectRefused,
    Response,
)
from proxy.security.outgoing import outgoing_client
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


async def test_a_body_that_does_not_decode_is_a_bad_response() -> None:
    broken = answer(b"not gzip at all", "content-encoding: gzip")
    async with serving(replying(broken)) as raw, client() as made:
        response = await made.request("POST", raw.url(), {}, b"{}")
        with pytest.raises(BadResponse, match="does not decode"):
            await whole(response)


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


async def test_a_stale_pooled_connection_never_fails_a_request() -> None:
    """The server closes a kept connection: at once after answering (the client sees it while
    idle), or only when the next request arrives on it (the race: the client had sent it)."""

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

    async def drop_every_second(n: int, head: bytes, writer: asyncio.StreamWriter) -> bool:
        if n % 2 == 0:
            return False  # read the request, then hang up without a byte
        writer.write(answer(b'{"n":%d}' % n))
        return True

    async with serving(drop_every_second) as raw, client() as made:
        assert await post(made, raw.url()) == b'{"n":1}'
        assert await post(made, raw.url()) == b'{"n":3}'  # sent again, on a new connection
    assert raw.connections == 2 and len(raw.requests) == 3


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
        finally:
            await verified.close()
            await system.close()
    assert names[0] == "llm.test"
    assert raw.requests and raw.requests[0].startswith(b"POST /v1/chat/completions")
