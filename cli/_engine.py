"""A CLI request served in this process: the daemon's own app (`proxy.server.build_app`) on a
private Unix socket, reached by the same client as a running daemon (`cli._client`).

So `chat --in-process`, `chat` when no daemon answers and `route test --send` behave like the
daemon in every respect (client keys, limits, model-name checks, the guarded upstream session,
routing, fallback), except for live health, which starts fresh; nothing listens on the network.
Imported only when a command must call the providers itself (it loads aiohttp and the routing
code).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

from cli._client import DaemonBackend, Sink, TurnInfo
from proxy.config import Config
from proxy.frozen import replace
from proxy.loop_thread import LoopThread
from proxy.server import build_app
from proxy.serving import DaemonRunner
from proxy.types import ClientAPI, JSONObject


async def probe_daemon(
    session: aiohttp.ClientSession, url: str, wait: float = 0.5, api_key: str | None = None
) -> JSONObject | None:
    """`GET /health` of a daemon, or None when nothing llmproxy-like answers in time. With a
    daemon that has client keys, only a valid `api_key` gets the targets' health."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with asyncio.timeout(wait):
            async with session.get(url.rstrip("/") + "/health", headers=headers) as response:
                if response.status != 200:
                    return None
                body = orjson.loads(await response.read())
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("status") == "ok" else None


class InProcessBackend:
    """Starts the app (on its own event loop, in a thread) at the first turn; `close` stops it."""

    def __init__(self, config: Config, api_key: str | None) -> None:
        self.config = config
        self.api_key = api_key
        self.label = "in-process"
        self._app: LoopThread[str] | None = None
        self._client: DaemonBackend | None = None

    def run(
        self, fmt: ClientAPI, body: JSONObject, sink: Sink, session: str | None = None
    ) -> TurnInfo:
        if self._client is None:
            self._app = LoopThread(lambda: _serving(self.config), name="llmproxy-in-process")
            # The Host header names loopback, as a local client's would.
            self._client = DaemonBackend(
                "http://localhost", self.api_key, socket_path=self._app.start()
            )
        info = self._client.run(fmt, body, sink, session)
        return replace(info, via=self.label)

    def close(self) -> None:
        if self._app is not None:
            self._app.stop()


@contextlib.asynccontextmanager
async def _serving(config: Config) -> AsyncIterator[str]:
    """The app on a Unix socket in a private directory (mode 0700: this user only)."""
    runner = DaemonRunner(build_app(config, operator=True))
    await runner.setup()
    directory = tempfile.mkdtemp(prefix="llmproxy-")
    try:
        path = os.path.join(directory, "daemon.sock")
        await web.UnixSite(runner, path).start()
        yield path
    finally:
        await runner.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def in_process_backend(config: Config, api_key: str | None = None) -> InProcessBackend:
    key = api_key or next((k for k in config.proxy.api_keys if k), None)
    return InProcessBackend(config, key)
