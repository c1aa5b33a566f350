"""Helpers for the security tests: the real daemon built with its test seams (a fake DNS
resolver, an injected rate limiter, a pretended peer address), and raw HTTP with any method."""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from raw_http import RawResponse
from support import CLIENT_KEY, DaemonTestServer

from proxy.config import Config, parse_config
from proxy.server import build_app
from proxy.serving import listening
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.simulate.deployment import LoopThread


class FakeDNS(AbstractResolver):
    """Answers from a table; counts lookups. Unknown names fail like NXDOMAIN."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = dict(table)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"fake DNS: no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


def pretend_peer(app: web.Application, address: str) -> None:
    """Make every request look as if it came from `address` (outermost middleware)."""

    @web.middleware
    async def peer(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(remote=address))

    app.middlewares.insert(0, peer)


class Served:
    def __init__(self, server: TestServer) -> None:
        self.server = server

    @property
    def app(self) -> web.Application:
        assert self.server.app is not None
        return self.server.app

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


class Apps:
    """Daemons started by one test; all closed at teardown."""

    def __init__(self) -> None:
        self._servers: list[TestServer] = []

    async def start(
        self, config: Config, *, host: str = "127.0.0.1", peer: str | None = None, **build: Any
    ) -> Served:
        app = build_app(config, **build)
        if peer is not None:
            pretend_peer(app, peer)
        server = DaemonTestServer(app, host=host)
        await server.start_server()
        self._servers.append(server)
        return Served(server)

    async def close(self) -> None:
        for server in self._servers:
            await server.close()


async def call(
    method: str,
    url: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> RawResponse:
    body = data if data is not None else (orjson.dumps(json) if json is not None else None)
    sent = {"content-type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=sent) as response,
    ):
        return RawResponse(
            response.status, response.content_type, await response.read(), dict(response.headers)
        )


def openai_error(response: RawResponse) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error body (fails on any other shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"type", "message", "param", "code"} <= set(error), error
    return error


def anthropic_error(response: RawResponse) -> dict[str, Any]:
    body = response.json()
    assert body.get("type") == "error" and set(body) == {"type", "error"}, body
    error: dict[str, Any] = body["error"]
    assert {"type", "message"} <= set(error), error
    return error


class DaemonThread:
    """Simulators and the daemon on their own loop (a `LoopThread`), for synchronous hypothesis
    tests."""

    def __init__(
        self,
        sims: Sequence[SimulatedProvider],
        config: Callable[[dict[str, SimulatedProvider]], str],
    ) -> None:
        self._thread = LoopThread(lambda: _serve_daemon(sims, config), name="daemon-thread")
        self.port = 0

    def __enter__(self) -> DaemonThread:
        self.port = self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.stop()

    def send(self, path: str, body: bytes | None, method: str = "POST") -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(
                method,
                path,
                body=body,
                headers={
                    "content-type": "application/json",
                    "x-api-key": CLIENT_KEY,
                    "anthropic-version": "2023-06-01",
                },
            )
            response = connection.getresponse()
            return response.status, response.getheader("content-type", ""), response.read()
        finally:
            connection.close()


@contextlib.asynccontextmanager
async def _serve_daemon(
    sims: Sequence[SimulatedProvider], config: Callable[[dict[str, SimulatedProvider]], str]
) -> AsyncIterator[int]:
    """The daemon over `sims`, listening on a free port (yielded) until the context ends."""
    async with run_simulated(sims) as running:
        app = build_app(parse_config(config(running), {}))
        async with listening(app, "127.0.0.1", 0) as runner:
            yield runner.addresses[0][1]
