"""Where a CLI request goes: a running daemon over HTTP, or the same routing and fallback code
in this process. Both hand neutral stream events to a sink and report the attempts.

In-process runs build exactly what `proxy.server.build_app` builds (one session, `Upstreams`,
`HealthRegistry`, `FallbackRunner`) and walk the chain with a `Job`, so they behave like the
daemon except for live health, which starts fresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from proxy.affinity import AFFINITY_HEADER, Affinity
from proxy.config import Config
from proxy.conversation import SESSION_HEADER, conversation_of
from proxy.daemon_client import (
    ATTEMPTS_HEADER,
    AttemptNote,
    StreamReader,
    answer_from_body,
    attempts_from_error,
    client_headers,
    client_path,
    error_message,
    parse_attempts,
    served_by,
)
from proxy.errors import ChainExhaustedError, ClientRequestError, RoutingError, UpstreamError
from proxy.fallback import ClientFacingError, FallbackRunner, Job
from proxy.health import HealthRegistry
from proxy.midstream import StreamLife
from proxy.providers.registry import Upstreams
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import (
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


async def probe_daemon(session: aiohttp.ClientSession, url: str, wait: float = 0.5
                       ) -> JSONObject | None:
    """`GET /health` of a daemon, or None when nothing llmproxy-like answers in time."""
    try:
        async with asyncio.timeout(wait):
            async with session.get(url.rstrip("/") + "/health") as response:
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
                attempts = parse_attempts(response.headers.get(ATTEMPTS_HEADER, ""))
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


class InProcessBackend:
    def __init__(self, session: aiohttp.ClientSession, config: Config) -> None:
        self.session = session
        self.config = config
        self.health = HealthRegistry(config.proxy.health)
        self.runner = FallbackRunner(config, Upstreams(session), self.health)
        self.affinity = Affinity.in_memory(config.affinity)
        self.label = "in-process"

    async def run(self, fmt: WireFormat, body: JSONObject, sink: Sink,
                  session: str | None = None) -> TurnInfo:
        started = time.monotonic()
        try:
            summary = summarize(body, fmt)
            decision = decide(summary, self.config)
        except (ClientRequestError, RoutingError) as exc:
            raise TurnError(str(exc), status=400) from exc
        headers = {SESSION_HEADER: session} if session is not None else {}
        conversation = conversation_of(body, headers, fmt)
        settings = self.config.affinity
        decision = self.affinity.route(decision, conversation, settings, self.health)
        job = Job(fmt, body, summary, decision, bool(body.get("stream")),
                  cache_key=conversation.key if conversation is not None else None)
        attempts: list[AttemptNote] = []
        try:
            if job.stream:
                life = StreamLife(self.runner, job)
                await life.open()
                try:
                    async for event in life.events():
                        sink(event)
                finally:
                    await life.aclose()
                    attempts = [AttemptNote.from_attempt(a) for a in life.attempts()]
                if life.report().finished:
                    self.affinity.served(conversation, life.served, settings)
            else:
                done = await self.runner.complete(job)
                attempts = [AttemptNote.from_attempt(a) for a in done.attempts]
                self.affinity.served(conversation, done.target, settings)
                for event in events_from_body(done.body, fmt):
                    sink(event)
        except ClientFacingError as exc:
            notes = tuple(AttemptNote.from_attempt(a) for a in exc.attempts)
            raise TurnError(exc.error.message, notes, exc.error.status, _ms(started)) from exc
        except ChainExhaustedError as exc:
            notes = tuple(AttemptNote.from_attempt(a) for a in exc.attempts)
            raise TurnError(str(exc), notes, exc.status, _ms(started)) from exc
        except UpstreamError as exc:  # the stream could not be completed anywhere
            raise TurnError(exc.message, tuple(attempts), exc.status, _ms(started)) from exc
        return TurnInfo(tuple(attempts), _ms(started), self.label, decision.affinity)

    async def aclose(self) -> None:
        await self.session.close()


Backend = DaemonBackend | InProcessBackend


async def open_backend(config: Config | None, *, url: str | None, in_process: bool,
                       api_key: str | None) -> Backend:
    """`--in-process` > `--url` > the configured daemon if it answers > in-process.

    Without a config, only a daemon can serve: `--url`, or one at the default address (e.g.
    `llmproxy serve --simulate`). Raises TurnError with advice when nothing can.
    """
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10))
    key = api_key or (config.proxy.api_keys[0] if config and config.proxy.api_keys else None)
    if in_process:
        if config is None:
            await session.close()
            raise TurnError("--in-process needs a config file (see `llmproxy init`)")
        return InProcessBackend(session, config)
    if url is not None:
        return DaemonBackend(session, url, key)
    candidate = daemon_url(config) if config is not None else DEFAULT_DAEMON_URL
    if await probe_daemon(session, candidate) is not None:
        return DaemonBackend(session, candidate, key)
    if config is None:
        await session.close()
        raise TurnError(
            f"no config file found and no daemon at {DEFAULT_DAEMON_URL}. Create a config with "
            "`llmproxy init`, or start the offline demo with `llmproxy serve --simulate`."
        )
    return InProcessBackend(session, config)


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
