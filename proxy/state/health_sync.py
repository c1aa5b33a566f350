"""Breakers, cooldowns, half-open probes and health figures, shared through Redis.

The request path never waits on Redis for health: the registry answers from memory, and this
task moves changes both ways in the background.

- A breaker or cooldown change here is written at once (`changed` wakes the task) into one
  Redis hash, field `provider,model`, if it is newer than what is there, then announced on the
  events channel; every instance re-reads the hash when it hears that, and every
  `SYNC_SECONDS` anyway, so a change is seen everywhere well within a second. The newest change
  of a target wins (wall-clock `version`).
- Figures (success rate, latency, time to first token) are this instance's recent
  outcomes, written every `SYNC_SECONDS` under its own key with a short expiry; the others'
  outcomes join the local ones in `status`, so `@fastest` ranks on every instance's traffic.
- A half-open target is probed by the one instance that wins `SET NX` on its probe key; the
  others skip it until the probe's outcome arrives (or the claim lapses after
  `PROBE_CLAIM_SECONDS`, if that instance died). Claiming happens in the background: the first
  request to meet the half-open target passes it by while the claim is decided.
- When Redis answers again after an outage, every target that is open or cooling here is
  written again (a restarted Redis has forgotten them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import orjson
from redis.exceptions import RedisError

from proxy.frozen import frozen
from proxy.health import HealthRegistry, Outcome, SharedHealth
from proxy.state.link import RedisLink
from proxy.types import Target

SYNC_SECONDS = 0.5
FIGURES_TTL_SECONDS = 5
PROBE_CLAIM_SECONDS = 30.0

# Write a target's state only over an older one: two instances may publish at once.
NEWER_WINS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local version = tonumber(string.match(current, '"version":([-0-9.eE+]+)'))
  if version and version >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


@frozen
class _Claim:
    mine: bool
    until: float


class HealthSync:
    """Implements `proxy.health.HealthPeers` for one registry over one `RedisLink`."""

    def __init__(self, link: RedisLink, registry: HealthRegistry) -> None:
        self._link = link
        self._registry = registry
        self._dirty: set[Target] = set()
        self._wake = asyncio.Event()
        self._claims: dict[Target, _Claim] = {}
        self._claiming: set[Target] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._states = link.key("health")
        self._events = link.key("events")
        self._instances = link.key("instances")
        link.on_up(self.resync)

    # --- HealthPeers --------------------------------------------------------------------------

    def changed(self, target: Target) -> None:
        self._dirty.add(target)
        self._wake.set()

    def may_probe(self, target: Target) -> bool:
        if not self._link.up:
            return True  # no one to agree with: each instance probes for itself
        claim = self._claims.get(target)
        if claim is not None and claim.until > time.monotonic():
            return claim.mine
        if target not in self._claiming:
            self._claiming.add(target)
            self._spawn(self._claim(target))
        return False

    # --- driven by the backend ----------------------------------------------------------------

    def resync(self) -> None:
        """Redis answers again: publish what is open or cooling here, and read the rest."""
        self._dirty.update(self._registry.unsettled())
        self._wake.set()

    def poke(self) -> None:
        """Another instance announced a change: read the shared state now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SYNC_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if not self._link.up:
                continue
            try:
                await self._push()
                await self._pull()
            except RedisError as exc:
                self._link.failed(exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the work -----------------------------------------------------------------------------

    async def _push(self) -> None:
        dirty, self._dirty = self._dirty, set()
        client = self._link.client
        figures = {
            str(target): [_outcome_row(o) for o in outcomes]
            for target, outcomes in self._registry.outcomes().items()
        }
        now = time.time()
        async with client.pipeline(transaction=False) as pipe:
            for target in dirty:
                shared = self._registry.shared(target)
                value = orjson.dumps(
                    {
                        "provider": target.provider,
                        "model": target.model,
                        "version": shared.version,
                        "opened_at": shared.opened_at,
                        "cooldown_until": shared.cooldown_until,
                        "reason": shared.reason,
                    }
                )
                pipe.eval(NEWER_WINS, 1, self._states, str(target), repr(shared.version), value)
                if (claim := self._claims.pop(target, None)) is not None and claim.mine:
                    pipe.delete(self._probe_key(target))
            instance = self._link.instance
            pipe.set(
                self._link.key("figures", instance), orjson.dumps(figures), ex=FIGURES_TTL_SECONDS
            )
            pipe.zadd(self._instances, {instance: now + FIGURES_TTL_SECONDS})
            pipe.zremrangebyscore(self._instances, "-inf", now)
            if dirty:
                pipe.publish(self._events, orjson.dumps({"kind": "health", "from": instance}))
            await pipe.execute()

    async def _pull(self) -> None:
        client = self._link.client
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._states)
            pipe.zrangebyscore(self._instances, time.time(), "+inf")
            states, instances = await pipe.execute()
        for raw in states.values():
            data = orjson.loads(raw)
            target = Target(data["provider"], data["model"])
            shared = SharedHealth(
                float(data["version"]),
                data["opened_at"],
                float(data["cooldown_until"]),
                str(data["reason"]),
            )
            if self._registry.apply_shared(target, shared):
                self._claims.pop(target, None)  # the probe, if any, is over
        others = [i.decode() for i in instances if i.decode() != self._link.instance]
        outcomes: dict[Target, list[Outcome]] = {}
        if others:
            keys = [self._link.key("figures", other) for other in others]
            for raw in await client.mget(keys):
                if raw is None:
                    continue
                for name, rows in orjson.loads(raw).items():
                    provider, _, model = name.partition(",")
                    outcomes.setdefault(Target(provider, model), []).extend(
                        _outcome(row) for row in rows
                    )
        self._registry.set_peer_outcomes(outcomes)

    async def _claim(self, target: Target) -> None:
        key = self._probe_key(target)
        client = self._link.client
        try:
            won = await client.set(
                key, self._link.instance, nx=True, px=int(PROBE_CLAIM_SECONDS * 1000)
            )
            left = PROBE_CLAIM_SECONDS if won else max(await client.pttl(key), 100) / 1000
        except RedisError as exc:
            self._link.failed(exc)
            return
        finally:
            self._claiming.discard(target)
        self._claims[target] = _Claim(bool(won), time.monotonic() + left)

    def _probe_key(self, target: Target) -> str:
        return self._link.key("probe", str(target))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _outcome_row(outcome: Outcome) -> list[Any]:
    return [outcome.ok, outcome.latency_ms, outcome.ttft_ms]


def _outcome(row: list[Any]) -> Outcome:
    """A peer's outcome. Rows written before the never-measured throughput was dropped carry
    a fourth field: it is ignored, so instances of both versions can share one Redis."""
    return Outcome(bool(row[0]), float(row[1]), row[2])
