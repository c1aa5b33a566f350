"""Where a CLI request goes: a running daemon over HTTP, or the same routing and fallback code
in this process. Both hand neutral stream events to a sink and report the attempts.

In-process runs serve the request with the daemon's own app (`proxy.server.build_app`) on a
private Unix socket, so they behave like the daemon in every respect (client keys, limits, SSRF
guard, fallback) except for live health, which starts fresh.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from proxy.affinity import AFFINITY_HEADER
from proxy.config import Config
from proxy.conversation import SESSION_HEADER
from proxy.daemon_client import (
    ATTEMPTS_HEADER,
    AttemptNote,
    StreamReader,
    answer_from_body,
    attempts_from_details,
    attempts_from_error,
    client_headers,
    client_path,
    error_message,
    parse_attempts,
    served_by,
)
from proxy.errors import UpstreamError
from proxy.server import build_app
from proxy.types import (
    ATTEMPT_DETAILS,
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
    WireFormat,
)

Sink = Callable[[StreamEvent], None]
DEFAULT_DAEMON_URL = "http://127.0.0.1:3456"


@dataclass(frozen=True, slots=True)
class TurnInfo:
    attempts: tuple[AttemptNote, ...]
    latency_ms: float
    via: str
    affinity: str | None = None
    """What prompt-cache affinity decided for this turn (`x-llmproxy-affinity`)."""

    @property
    def served_by(self) -> str | None:
        return served_by(self.attempts)


class TurnError(Exception):
    """The request failed as a whole: every target failed, or the answer was refused."""

    def __init__(self, message: str, attempts: tuple[AttemptNote, ...] = (),
                 status: int | None = None, latency_ms: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.status = status
        self.latency_ms = latency_ms


def daemon_url(config: Config) -> str:
    """Where the configured daemon listens, as a client reaches it."""
    return reachable_url(config.proxy.host, config.proxy.port)


def reachable_url(host: str, port: int) -> str:
    """The URL a local client uses for a bind address (wildcards mean loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def probe_daemon(session: aiohttp.ClientSession, url: str, wait: float = 0.5,
                       api_key: str | None = None) -> JSONObject | None:
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


class DaemonBackend:
    def __init__(self, session: aiohttp.ClientSession, url: str, api_key: str | None) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.label = f"daemon {self.url}"

    async def run(self, fmt: WireFormat, body: JSONObject, sink: Sink,
                  session: str | None = None) -> TurnInfo:
        started = time.monotonic()
        headers = client_headers(fmt, self.api_key)
        if session is not None:
            headers[SESSION_HEADER] = session
        try:
            async with self.session.post(self.url + client_path(fmt), data=orjson.dumps(body),
                                         headers=headers) as response:
                attempts = (attempts_from_details(response.headers.get(ATTEMPT_DETAILS, ""))
                            or parse_attempts(response.headers.get(ATTEMPTS_HEADER, "")))
                affinity = response.headers.get(AFFINITY_HEADER)
                if response.status != 200:
                    raw = await response.read()
                    payload = _json(raw)
                    raise TurnError(error_message(payload, raw),
                                    attempts_from_error(payload) or attempts, response.status,
                                    _ms(started))
                if body.get("stream"):
                    reader = StreamReader(fmt)
                    async for chunk in response.content.iter_any():
                        for event in reader.feed(chunk):
                            sink(event)
                    for event in reader.close():
                        sink(event)
                    attempts = reader.trailer or attempts
                    if not reader.ended:
                        raise TurnError("the stream ended before the answer was complete",
                                        attempts, 200, _ms(started))
                else:
                    for event in events_from_body(_json(await response.read()), fmt):
                        sink(event)
        except UpstreamError as exc:  # an error event inside the stream
            raise TurnError(exc.message, attempts, exc.status, _ms(started)) from exc
        except aiohttp.ClientError as exc:
            raise TurnError(f"cannot reach the daemon at {self.url}: {exc}",
                            latency_ms=_ms(started)) from exc
        return TurnInfo(attempts, _ms(started), self.label, affinity)

    async def aclose(self) -> None:
        await self.session.close()


class InProcessBackend(DaemonBackend):
    """The daemon's own app (`proxy.server.build_app`), served for this one command on a Unix
    socket in a private temporary directory: the same middleware, routing, fallback loop and
    guarded upstream session as `llmproxy serve`, with nothing listening on the network."""

    def __init__(self, session: aiohttp.ClientSession, runner: web.AppRunner, directory: str,
                 api_key: str | None) -> None:
        # The Host header names loopback, as a local client's would.
        super().__init__(session, "http://localhost", api_key)
        self.runner = runner
        self.directory = directory
        self.label = "in-process"

    @classmethod
    async def start(cls, config: Config, api_key: str | None) -> InProcessBackend:
        runner = web.AppRunner(build_app(config, operator=True), access_log=None,
                               handle_signals=False)
        await runner.setup()
        directory = tempfile.mkdtemp(prefix="llmproxy-")  # mode 0700: only this user
        socket_path = os.path.join(directory, "daemon.sock")
        try:
            await web.UnixSite(runner, socket_path).start()
        except OSError:
            await runner.cleanup()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(socket_path),
                                        timeout=aiohttp.ClientTimeout(total=None))
        return cls(session, runner, directory, api_key)

    async def aclose(self) -> None:
        await self.session.close()
        await self.runner.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)


Backend = DaemonBackend | InProcessBackend


async def open_backend(config: Config | None, *, url: str | None, in_process: bool,
                       api_key: str | None) -> Backend:
    """`--in-process` > `--url` > the configured daemon if it answers > in-process.

    Without a config, only a daemon can serve: `--url`, or one at the default address (e.g.
    `llmproxy serve --simulate`). Raises TurnError with advice when nothing can.
    """
    key = api_key or (config.proxy.api_keys[0] if config and config.proxy.api_keys else None)
    if in_process:
        if config is None:
            raise TurnError("--in-process needs a config file (see `llmproxy init`)")
        return await InProcessBackend.start(config, key)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10))
    if url is not None:
        return DaemonBackend(session, url, key)
    candidate = daemon_url(config) if config is not None else DEFAULT_DAEMON_URL
    if await probe_daemon(session, candidate) is not None:
        return DaemonBackend(session, candidate, key)
    await session.close()
    if config is None:
        raise TurnError(
            f"no config file found and no daemon at {DEFAULT_DAEMON_URL}. Create a config with "
            "`llmproxy init`, or start the offline demo with `llmproxy serve --simulate`."
        )
    return await InProcessBackend.start(config, key)


def events_from_body(body: object, fmt: WireFormat) -> list[StreamEvent]:
    """A non-streaming answer as the events a stream of it would carry, so one renderer serves
    both."""
    answer = answer_from_body(body, fmt)
    events: list[StreamEvent] = [MessageStart("", answer.model, answer.usage)]
    if answer.reasoning:
        events.append(ReasoningDelta(answer.reasoning))
    if answer.text:
        events.append(TextDelta(answer.text))
    for call in answer.tool_calls:
        events += [ToolCallStart(call.index, call.id, call.name),
                   ToolCallDelta(call.index, call.arguments)]
    events.append(UsageUpdate(answer.usage))
    if answer.stop is not None:
        events.append(Finish(answer.stop))
    return events


def _json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
