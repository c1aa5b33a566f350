"""Rate limits shared by every instance: one Lua script decides each request in one round trip.

The buckets are those of `MemoryRateLimiter` (same refill, same debt rule, every bucket checked
before any is charged), kept in Redis under the `[state] prefix`; a request's concurrency lease
is a member of a sorted set that expires on its own if the instance holding it dies. Freeing a
lease is sent in the background: the request path pays the one decision round trip only.

While Redis is unreachable the local buckets decide (`rate_limits_when_down = "open"`: each
instance then enforces the whole limit by itself) or limited requests are refused with 503
(`"closed"`).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from importlib.resources import files

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from proxy.security.ratelimit import (
    Lease,
    LimitsUnavailable,
    MemoryRateLimiter,
    RateLimited,
)
from proxy.security.settings import Rate, RateLimitSettings
from proxy.state.link import RedisLink

SCRIPT = files("proxy.state").joinpath("ratelimit.lua").read_text(encoding="utf-8")
SCOPES = ("client", "global")
DIMENSIONS = ("concurrent requests", "requests per minute", "tokens per minute")
LEASE_SECONDS = 900.0
"""How long a lease may outlive a crashed instance; longer than any request's deadline."""


@dataclass(slots=True)
class _SharedLease:
    limiter: SharedRateLimiter
    keys: tuple[str, ...]
    lease_id: str
    released: bool = field(default=False)

    async def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter.free(self.keys, self.lease_id)


@dataclass(slots=True)
class _NoLease:
    async def release(self) -> None:
        return None


class SharedRateLimiter:
    def __init__(
        self, settings: RateLimitSettings, link: RedisLink, *, fail_closed: bool = False
    ) -> None:
        self._link = link
        self._local = MemoryRateLimiter(settings)
        self._fail_closed = fail_closed
        self._script: AsyncScript | None = None
        self._rates = (*_numbers(settings.per_client), *_numbers(settings.overall))
        self._concurrency = bool(
            settings.per_client.concurrent_requests or settings.overall.concurrent_requests
        )
        self._ids = itertools.count()
        self._frees: set[asyncio.Task[None]] = set()

    async def acquire(self, client: str, tokens: int) -> Lease:
        if self._link.up:
            lease_id = f"{self._link.instance}:{next(self._ids)}"
            keys = (*self._keys("client", client), *self._keys("global", ""))
            try:
                verdict = await self._decide(
                    keys, [tokens, lease_id, int(LEASE_SECONDS * 1000), *self._rates]
                )
            except RedisError as exc:
                self._link.failed(exc)
            else:
                if verdict[0]:
                    scope, dimension, wait_ms = (int(v) for v in verdict)
                    raise RateLimited(SCOPES[scope - 1], DIMENSIONS[dimension - 1], wait_ms / 1000)
                if not self._concurrency:
                    return _NoLease()
                return _SharedLease(self, (keys[2], keys[5]), lease_id)
        if self._fail_closed:
            raise LimitsUnavailable("shared rate limits are unavailable (Redis unreachable)")
        return await self._local.acquire(client, tokens)

    async def _decide(self, keys: tuple[str, ...], args: list[int | str]) -> list[int]:
        if self._script is None:  # needs the started client; EVALSHA reloads it after a
            self._script = self._link.client.register_script(SCRIPT)  # Redis restart
        result: list[int] = await self._script(keys=list(keys), args=args)
        return result

    def _keys(self, scope: str, client: str) -> tuple[str, str, str]:
        base = self._link.key("rl", scope, client) if client else self._link.key("rl", scope)
        return f"{base}:requests", f"{base}:tokens", f"{base}:leases"

    def free(self, keys: tuple[str, ...], lease_id: str) -> None:
        """Drop a lease off the request path; if Redis is gone, it lapses by itself."""
        task = asyncio.get_running_loop().create_task(self._free(keys, lease_id))
        self._frees.add(task)
        task.add_done_callback(self._frees.discard)

    async def close(self) -> None:
        for task in list(self._frees):
            task.cancel()
        await asyncio.gather(*self._frees, return_exceptions=True)

    async def _free(self, keys: tuple[str, ...], lease_id: str) -> None:
        try:
            async with self._link.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, lease_id)
                await pipe.execute()
        except RedisError as exc:
            self._link.failed(exc)


def _numbers(rate: Rate) -> tuple[int, int, int]:
    return (
        rate.requests_per_minute or 0,
        rate.tokens_per_minute or 0,
        rate.concurrent_requests or 0,
    )
