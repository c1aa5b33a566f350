"""The Redis state backend (`[state] backend = "redis"`): the events channel, and the shared
rate limiter, health and affinity over one `RedisLink`. Imported only by `backend.open_state`
when the state is shared, so that a daemon with the memory backend never loads redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from proxy.affinity import AffinitySettings, AffinityTable, MemoryAffinityTable
from proxy.health import HealthRegistry
from proxy.security.ratelimit import RateLimiter
from proxy.security.settings import RateLimitSettings
from proxy.state.affinity_sync import SharedAffinityTable
from proxy.state.health_sync import HealthSync
from proxy.state.link import RETRY_SECONDS, RedisLink
from proxy.state.ratelimit import SharedRateLimiter
from proxy.state.settings import StateSettings
from proxy.types import JSONObject

if TYPE_CHECKING:  # backend imports this module when the state is shared
    from proxy.state.backend import ConfigHandler

log = logging.getLogger("llmproxy.state")

LISTEN_POLL_SECONDS = 0.4
"""Below the link's command timeout, so an idle subscription is not taken for a dead one."""
CLOSE_SECONDS = 2.0


class RedisState:
    shared = True

    def __init__(self, settings: StateSettings) -> None:
        self._settings = settings
        instance = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._link = RedisLink(settings, instance)
        self._health: HealthSync | None = None
        self._affinity: SharedAffinityTable | None = None
        self._limiter: SharedRateLimiter | None = None
        self._on_config: ConfigHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def limiter(self, settings: RateLimitSettings) -> RateLimiter:
        self._limiter = SharedRateLimiter(
            settings, self._link, fail_closed=self._settings.fail_closed
        )
        return self._limiter

    def watch(self, registry: HealthRegistry) -> None:
        self._health = HealthSync(self._link, registry)
        registry.peers = self._health

    def affinity_table(self, settings: AffinitySettings) -> AffinityTable:
        self._affinity = SharedAffinityTable(MemoryAffinityTable(settings.max_entries), self._link)
        return self._affinity

    def publish_config(self, change: JSONObject) -> None:
        if self._link.up:
            message = {"kind": "config", "from": self._link.instance, "change": change}
            self._spawn(self._publish(orjson.dumps(message)))
        else:
            log.warning(
                "shared state: Redis unreachable; this management change applies on "
                "this instance only"
            )

    def status(self) -> JSONObject:
        link = self._link
        return {
            "backend": "redis",
            "redis": "up" if link.up else "down",
            "since": round(link.since, 3),
            "problem": link.problem,
            "instance": link.instance,
        }

    async def start(self, on_config: ConfigHandler) -> None:
        self._on_config = on_config
        await self._link.start()
        # Subscribed before the daemon serves: a change published once it answers is heard.
        pubsub = await self._subscribe() if self._link.up else None
        if self._health is not None:
            self._spawn(self._health.run())
        if self._affinity is not None:
            self._spawn(self._affinity.run())
        self._spawn(self._listen(pubsub))

    async def close(self) -> None:
        # Shutdown must not wait on Redis: whatever has not finished in time is dropped.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                if self._health is not None:
                    await self._health.close()
                if self._limiter is not None:
                    await self._limiter.close()
        await self._link.close()

    async def _publish(self, message: bytes) -> None:
        try:
            await self._link.client.publish(self._link.key("events"), message)
        except RedisError as exc:
            self._link.failed(exc)

    async def _subscribe(self) -> PubSub | None:
        pubsub = self._link.client.pubsub()
        try:
            await pubsub.subscribe(self._link.key("events"))
        except RedisError as exc:
            self._link.failed(exc)
            await _close(pubsub)
            return None
        return pubsub

    async def _listen(self, pubsub: PubSub | None) -> None:
        """Listen on the events channel; after an outage, subscribe again and catch up."""
        while True:
            if pubsub is None:
                if self._link.up:
                    pubsub = await self._subscribe()
                if pubsub is None:
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if self._health is not None:
                    self._health.poke()  # what changed while we were not listening
            try:
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_POLL_SECONDS
                    )
                    if message is not None:
                        self._dispatch(message["data"])
            except RedisError as exc:
                self._link.failed(exc)
            finally:
                await _close(pubsub)
            pubsub = None

    def _dispatch(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("from") == self._link.instance:
            return
        kind = message.get("kind")
        if kind == "health" and self._health is not None:
            self._health.poke()
        elif kind == "affinity" and self._affinity is not None:
            self._affinity.apply(message.get("entries"))
        elif kind == "config" and self._on_config is not None:
            change = message.get("change")
            if isinstance(change, dict):
                self._spawn(self._on_config(change))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _close(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
