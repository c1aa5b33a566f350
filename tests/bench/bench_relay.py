"""Reference relays for `bench_proxy.py --relay KIND`: measuring instruments, not product.

A relay accepts a request and makes the same one to the upstream, forwarding the body as it is
and the answer as it comes: no parsing of either body, no routing, translation, limits or
observability. Measured exactly like the daemon, a relay answers how much of the daemon's added
latency and CPU the extra hop itself costs, and how much llmproxy's own work does.

- `aiohttp`: built from the daemon's own pieces: aiohttp's web server (an `Application` with one
  route and no middleware) and llmproxy's HTTP/1.1 client (`proxy.security.http1`). A
  non-streamed answer (one with a length) is read whole and returned as a `web.Response`; a
  stream is written once per read of the upstream's body, its headers with the first bytes, as
  the daemon does.
- `httptools`: no aiohttp at all: asyncio's protocol API on both sides, `httptools` parsing the
  client's requests and the upstream's answers (only to know where each ends); the answer's
  bytes go to the client as they arrive, its head unchanged.

Run by `bench_proxy.py` as `python bench_relay.py KIND PORT UPSTREAM_URL`, on uvloop, as the
daemon runs.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httptools

REPO = Path(__file__).resolve().parents[2]
KINDS = ("aiohttp", "httptools")


async def aiohttp_relay(port: int, upstream: str) -> None:
    sys.path.insert(0, str(REPO))
    from aiohttp import web
    from aiohttp.resolver import DefaultResolver
    from yarl import URL

    from proxy.security.http1 import Client

    base = URL(upstream)
    client = Client(lambda url: None, DefaultResolver(), connect_timeout=10.0)

    class FirstBytesWithHeaders(web.StreamResponse):
        _send_headers_immediately = False  # as the daemon's streams (`handlers._EventStream`)

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        answer = await client.request("POST", base.with_path(request.path), headers, body)
        try:
            kind = answer.headers.get("content-type", "application/json")
            if answer.content_length is not None:
                chunks = []
                while chunk := await answer.readany():
                    chunks.append(chunk)
                return web.Response(status=answer.status, body=b"".join(chunks), content_type=kind)
            response = FirstBytesWithHeaders(status=answer.status, headers={"content-type": kind})
            await response.prepare(request)
            while chunk := await answer.readany():
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            answer.release()

    app = web.Application(client_max_size=1 << 24)
    app.router.add_post("/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


class _Upstream(asyncio.Protocol):
    """One kept connection to the upstream; passes one answer's bytes to one client at a time."""

    def __init__(self, pool: list[_Upstream]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.client is not None
        self.client.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.client = None
        self.pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # The upstream closed a kept connection (its keep-alive timeout): not to be reused, and
        # an answer cut short ends its client's connection too.
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None:
            self.client.close()


class _Server(asyncio.Protocol):
    """One client connection: each request, once whole, is sent to the upstream as it came."""

    def __init__(self, relay: _Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        head = (
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (self.url, self.relay.host, len(body))
        )
        assert self.transport is not None
        self.relay.send(head + body, self.transport)


class _Relay:
    def __init__(self, host: str, port: int) -> None:
        self.host = f"{host}:{port}".encode()
        self.address = (host, port)
        self.pool: list[_Upstream] = []

    def send(self, request: bytes, client: asyncio.Transport) -> None:
        if self.pool:
            self._send(self.pool.pop(), request, client)
            return
        connecting = asyncio.ensure_future(
            asyncio.get_running_loop().create_connection(
                lambda: _Upstream(self.pool), *self.address
            )
        )
        connecting.add_done_callback(lambda done: self._send(done.result()[1], request, client))

    @staticmethod
    def _send(upstream: _Upstream, request: bytes, client: asyncio.Transport) -> None:
        upstream.client = client
        assert upstream.transport is not None
        upstream.transport.write(request)


async def httptools_relay(port: int, upstream: str) -> None:
    host, _, upstream_port = upstream.removeprefix("http://").partition(":")
    relay = _Relay(host, int(upstream_port))
    server = await asyncio.get_running_loop().create_server(
        lambda: _Server(relay), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    kind, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    relay = {"aiohttp": aiohttp_relay, "httptools": httptools_relay}[kind]
    try:
        import uvloop

        uvloop.run(relay(port, upstream))
    except ImportError:
        asyncio.run(relay(port, upstream))


if __name__ == "__main__":
    main()
