"""Where a CLI request goes: a running daemon over HTTP, or the same routing and fallback code
in this process. Both hand neutral stream events to a sink and report the attempts.

In-process runs build exactly what `proxy.server.build_app` builds (one session, `Upstreams`,
`HealthRegistry`, `FallbackRunner`) and walk the chain with a `Job`, so they behave like the
daemon except for live health, which starts fresh.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from cli._client import Sink, TurnError, TurnInfo
from proxy.affinity import Affinity
from proxy.config import Config
from proxy.conversation import SESSION_HEADER, conversation_of
from proxy.daemon_client import AttemptNote, events_from_body, settled
from proxy.errors import ChainExhaustedError, ClientRequestError, RoutingError, UpstreamError
from proxy.fallback import ClientFacingError, FallbackRunner, Job
from proxy.health import HealthRegistry
from proxy.midstream import StreamLife
from proxy.providers.registry import Upstreams
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import (
    JSONObject,
    WireFormat,
)


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
                    attempts = list(settled([AttemptNote.from_attempt(a)
                                             for a in life.attempts()]))
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


def in_process_backend(config: Config) -> InProcessBackend:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10))
    return InProcessBackend(session, config)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
