"""The state backend of one daemon: `memory` (this process only) or `redis` (shared).

`open_state(settings)` gives the app one `SharedState`; the app asks it for the rate limiter,
hands it the health registry, publishes management changes through it and starts and stops it
with its own lifecycle. The memory backend is the single-process behaviour, unchanged.

With Redis, one events channel carries three kinds of message: `health` (re-read the shared
breakers now, see `health_sync`), `affinity` (conversations' last targets, see
`affinity_sync`) and `config` (a management change validated and applied on the instance that
received it, to apply here as well). Pub/sub is fire-and-forget: a config
change made while Redis is unreachable applies on its own instance only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from proxy.affinity import AffinitySettings, AffinityTable, MemoryAffinityTable
from proxy.health import HealthRegistry
from proxy.security.ratelimit import MemoryRateLimiter, RateLimiter
from proxy.security.settings import RateLimitSettings
from proxy.state.settings import StateSettings
from proxy.types import JSONObject

ConfigHandler = Callable[[JSONObject], Coroutine[Any, Any, None]]


class SharedState(Protocol):
    @property
    def shared(self) -> bool: ...

    def limiter(self, settings: RateLimitSettings) -> RateLimiter: ...

    def watch(self, registry: HealthRegistry) -> None:
        """Share `registry`'s breakers, cooldowns, probes and figures."""
        ...

    def affinity_table(self, settings: AffinitySettings) -> AffinityTable: ...

    def publish_config(self, change: JSONObject) -> None:
        """Send a management change, applied here already, to the other instances."""
        ...

    def status(self) -> JSONObject: ...

    async def start(self, on_config: ConfigHandler) -> None: ...

    async def close(self) -> None: ...


class MemoryState:
    shared = False

    def limiter(self, settings: RateLimitSettings) -> RateLimiter:
        return MemoryRateLimiter(settings)

    def watch(self, registry: HealthRegistry) -> None:
        return None

    def affinity_table(self, settings: AffinitySettings) -> AffinityTable:
        return MemoryAffinityTable(settings.max_entries)

    def publish_config(self, change: JSONObject) -> None:
        return None

    def status(self) -> JSONObject:
        return {"backend": "memory"}

    async def start(self, on_config: ConfigHandler) -> None:
        return None

    async def close(self) -> None:
        return None


def open_state(settings: StateSettings) -> SharedState:
    if not settings.shared:
        return MemoryState()
    # redis, and what it loads (OpenTelemetry among it), only for a shared state: a daemon of
    # its own holds none of it in memory (README, "Performance": the daemon's RSS).
    from proxy.state.redis_state import RedisState

    return RedisState(settings)
