"""The prompt-cache affinity table, shared: each instance keeps its own table (the request path
reads it, never Redis) and announces every entry it records on the events channel; the others
put it in theirs. So the next turn of a conversation finds its warm target whichever instance
the load balancer sends it to, provided the announcement (batched, sent at once in the
background) arrived first: well under a second. Entries announced while Redis is unreachable
stay local; the table is a cache, and a miss only costs a cold prompt cache.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from redis.exceptions import RedisError

from proxy.affinity import AffinityEntry, MemoryAffinityTable
from proxy.state.link import RedisLink
from proxy.types import Target

BATCH = 500


class SharedAffinityTable:
    """`proxy.affinity.AffinityTable` over a local table, kept in step through Redis."""

    def __init__(self, local: MemoryAffinityTable, link: RedisLink) -> None:
        self._local = local
        self._link = link
        self._outbox: list[list[Any]] = []
        self._wake = asyncio.Event()

    def get(self, key: str, now: float) -> AffinityEntry | None:
        return self._local.get(key, now)

    def put(self, key: str, target: Target, now: float, ttl: float) -> None:
        self._local.put(key, target, now, ttl)
        if self._link.up and len(self._outbox) < BATCH * 20:
            self._outbox.append([key, target.provider, target.model, ttl])
            self._wake.set()

    def __len__(self) -> int:
        return len(self._local)

    def apply(self, entries: Any) -> None:
        """Entries another instance recorded (from its `affinity` message)."""
        if not isinstance(entries, list):
            return
        now = time.monotonic()  # `Affinity`'s clock
        for entry in entries:
            if isinstance(entry, list) and len(entry) == 4:
                key, provider, model, ttl = entry
                self._local.put(str(key), Target(str(provider), str(model)), now, float(ttl))

    async def run(self) -> None:
        """Send what was recorded here, in batches, as soon as there is something."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox[:BATCH], self._outbox[BATCH:]
                message = {"kind": "affinity", "from": self._link.instance, "entries": batch}
                try:
                    await self._link.client.publish(self._link.key("events"), orjson.dumps(message))
                except RedisError as exc:
                    self._link.failed(exc)
                    self._outbox.clear()
