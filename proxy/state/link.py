"""The process's one Redis client (one connection pool) and whether Redis answers.

Every shared-state user calls Redis through this link and reports a failure with `failed`. The
first failure marks Redis down (logged once, with the reason; a relapse within `QUIET_SECONDS`
of recovering is the same outage, logged at debug level): from then on nobody waits on it,
state is local, and a watcher pings every `RETRY_SECONDS` until it answers again, which is
logged once too and triggers the resync callbacks. Commands time out after `TIMEOUT_SECONDS`, so
a slow Redis is treated as a down one within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.state.settings import StateSettings

log = logging.getLogger("llmproxy.state")

TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 0.5
MAX_CONNECTIONS = 64
QUIET_SECONDS = 10.0


class RedisLink:
    def __init__(self, settings: StateSettings, instance: str) -> None:
        self.prefix = settings.prefix
        self.instance = instance
        self.up = False
        self.since = time.time()
        self.problem = "not connected yet"
        self._url = settings.url
        self._client: Redis | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._on_up: list[Callable[[], None]] = []
        self._closed = False
        self._quiet = False
        self._recovered_at = 0.0

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise RuntimeError("RedisLink.start() was not awaited")
        return self._client

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def on_up(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time Redis answers again (to publish local state anew)."""
        self._on_up.append(callback)

    async def start(self) -> None:
        # No retries inside redis-py: a failed command falls back to local state at once,
        # and the watcher below is the one place that tries again.
        self._client = Redis.from_url(
            self._url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            max_connections=MAX_CONNECTIONS,
        )
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return
        self._mark_up()

    async def close(self) -> None:
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._client is not None:
            with contextlib.suppress(TimeoutError, RedisError, OSError):
                async with asyncio.timeout(TIMEOUT_SECONDS * 2):
                    await self._client.aclose()

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed: go local until the watcher sees Redis answer again."""
        if self._closed or (not self.up and self._watcher is not None):
            return
        was_up = self.up
        now = time.time()
        # A Redis that flaps (back, then a timeout under load) is one outage: said once.
        self._quiet = was_up and now - self._recovered_at < QUIET_SECONDS
        self.up = False
        self.since = now
        self.problem = _describe(exc)
        level = logging.DEBUG if self._quiet else logging.WARNING
        if was_up:
            log.log(
                level,
                "shared state: Redis unreachable (%s); using local state until it answers again",
                self.problem,
            )
        else:
            log.log(
                level,
                "shared state: cannot reach Redis (%s); using local state until it answers",
                self.problem,
            )
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                # Idle pooled connections may be to the Redis that went away: drop them, or
                # their first use would fail and take us down again.
                await self.client.connection_pool.disconnect(inuse_connections=False)
                await self.client.ping()
            except (RedisError, OSError) as exc:
                self.problem = _describe(exc)
                continue
            self._watcher = None
            self._recovered_at = time.time()
            self._mark_up()
            return

    def _mark_up(self) -> None:
        self.up = True
        self.since = time.time()
        self.problem = ""
        log.log(
            logging.DEBUG if self._quiet else logging.INFO,
            "shared state: Redis answers; sharing limits, health and config changes",
        )
        for callback in self._on_up:
            callback()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
