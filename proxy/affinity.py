"""Prompt-cache affinity: a conversation keeps the target that served its last turn on the route
its new turn takes.

Providers discount (or skip) the prefix of a prompt they saw recently, and a coding agent's turns
share almost all of their prompt. Moving a conversation between targets throws that cache away;
returning to the first target as soon as it recovers from a blip throws it away twice. So:

- Routing decides first (`proxy.routing`): a turn that asks for something else ("think hard",
  a web search tool, an image) follows its own route. Affinity then chooses only among the
  targets that route names itself (`Decision.route_targets`: its own chain, not the `default`
  chain appended behind it).
- `choose` (pure) puts the target that served the conversation's last turn *on the same route*
  at the head of the request's chain, when that target is still on the chain (routing has
  already removed the targets that cannot serve this request: context, tools, images) and
  health would send it traffic. Otherwise the chain is left as routed and the reason is
  recorded: a turn routed elsewhere says its route differs from the conversation's. When a later
  turn takes the first route again, that route's entry applies again. An explicit
  `provider,model` from the client is never overridden. A ranked alias (`@fastest`) therefore
  ranks a conversation's first turn; later turns stay where it landed.
- `Affinity.served` records the target that completed a turn, under the conversation's key and
  under the key of the conversation on that route. After a failover that is the new target, so
  the conversation stays there rather than jumping back to a cold cache.

What is kept: a conversation key (a digest, see `proxy.conversation`) with a route name, a target
and a time, never a prompt. Entries expire `ttl` seconds after the turn that last used them
(about the providers' own cache lifetime: Anthropic's default cache lives 5 minutes from its
last use), and the table holds at most `max_entries` entries (two for a conversation on one
route), dropping the least recently used.

The table is behind `AffinityTable`, synchronous on purpose, so the request path never waits on
the network. A single daemon uses `MemoryAffinityTable`; with the Redis state backend
(`[state]`), `proxy.state.affinity_sync.SharedAffinityTable` wraps one and announces every entry
it records to the other instances in the background, so a conversation's next turn finds its
target on whichever instance serves it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from proxy.conversation import Conversation
from proxy.frozen import frozen, replace
from proxy.health import BreakerState
from proxy.ranking import HealthView
from proxy.types import AFFINITY_HEADER as AFFINITY_HEADER
from proxy.types import Decision, Target

DEFAULT_TTL = 300.0
DEFAULT_MAX_ENTRIES = 10_000


@frozen
class AffinitySettings:
    """`[affinity]`."""

    enabled: bool = True
    ttl: float = DEFAULT_TTL
    """Seconds an entry lives after the turn that last used it."""
    max_entries: int = DEFAULT_MAX_ENTRIES


@frozen
class AffinityEntry:
    target: Target
    served_at: float
    """The table clock's time of the turn it was recorded for."""
    expires_at: float


class AffinityTable(Protocol):
    """Conversation key -> the target that served its last turn."""

    def get(self, key: str, now: float) -> AffinityEntry | None:
        """The live entry for `key`, or None (never seen, or expired)."""
        ...

    def put(self, key: str, target: Target, now: float, ttl: float) -> None: ...

    def __len__(self) -> int: ...


class MemoryAffinityTable:
    """Bounded LRU for one process; each turn that uses an entry gives it `ttl` more seconds."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, AffinityEntry] = OrderedDict()

    def get(self, key: str, now: float) -> AffinityEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires_at:
            del self._entries[key]
            return None
        return entry

    def put(self, key: str, target: Target, now: float, ttl: float) -> None:
        self._entries[key] = AffinityEntry(target, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


SkipReason = Callable[[Target], str | None]


def unhealthy(health: HealthView) -> SkipReason:
    """Why health would hold traffic back from a target, read without side effects (asking
    `HealthRegistry.skip_reason` would take a half-open target's single probe slot)."""

    def reason(target: Target) -> str | None:
        status = health.status(target)
        if status.cooldown_left > 0:
            return f"cooling down {status.cooldown_left:.0f}s: {status.reason}"
        if status.state is not BreakerState.CLOSED:
            return f"circuit {status.state.value}: {status.reason}"
        return None

    return reason


def choose(
    decision: Decision,
    entry: AffinityEntry | None,
    age: float,
    unavailable: SkipReason,
    elsewhere: AffinityEntry | None = None,
) -> Decision:
    """The decision with the conversation's last target on this route first when it can serve,
    and `affinity` saying what was decided and why. `entry`: the conversation's entry for
    `decision.route`; `age`: seconds since that turn; `unavailable(target)`: why health would
    not send it traffic, or None; `elsewhere`: when there is no entry for this route, the
    conversation's last turn on another route."""
    if decision.explicit:
        return replace(decision, affinity="the client named a target: affinity not applied")
    if entry is None:
        if elsewhere is not None:
            return replace(
                decision,
                affinity=(
                    f"route {decision.route} differs from the conversation's route (its last turn "
                    f"went to {elsewhere.target}): routed as below; the target that serves it is "
                    "kept for this route"
                ),
            )
        return replace(
            decision,
            affinity="new conversation: routed as below; the target that serves it is kept",
        )
    last = entry.target
    since = f"served the last turn {age:.0f}s ago"
    unfit = next((s.reason for s in decision.skipped if s.target == last), None)
    if unfit is not None:
        return replace(
            decision,
            affinity=f"{last} {since} but cannot serve this request ({unfit}): routed as below",
        )
    if last not in decision.chain or last not in decision.route_targets:
        return replace(
            decision,
            affinity=f"{last} {since} but is not among route "
            f"{decision.route}'s targets: routed as below",
        )
    why_not = unavailable(last)
    if why_not is not None:
        return replace(
            decision, affinity=f"{last} {since} but is unavailable ({why_not}): routed as below"
        )
    chain = (last, *(t for t in decision.chain if t != last))
    return replace(
        decision,
        chain=chain,
        affinity=f"kept {last}: it {since} on route {decision.route} (its prompt cache is warm)",
        sticky=last,
    )


def route_key(conversation: Conversation, route: str) -> str:
    """The table key of `conversation` on `route`; the conversation's own key holds its last
    turn on any route."""
    return f"{conversation.key}/{route}"


class Affinity:
    """The app's affinity table and clock; outlives config reloads (like the health registry).
    `[affinity]` changes apply at once except `max_entries`, which sizes the table at start."""

    def __init__(self, table: AffinityTable, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self._clock = clock

    @classmethod
    def in_memory(cls, settings: AffinitySettings) -> Affinity:
        return cls(MemoryAffinityTable(settings.max_entries))

    def route(
        self,
        decision: Decision,
        conversation: Conversation | None,
        settings: AffinitySettings,
        health: HealthView,
    ) -> Decision:
        """Apply affinity to a routed decision, before its chain is walked."""
        if not settings.enabled or conversation is None:
            return decision
        now = self._clock()
        entry = elsewhere = None
        if conversation.continued:
            entry = self.table.get(route_key(conversation, decision.route), now)
            if entry is None:
                elsewhere = self.table.get(conversation.key, now)
        age = now - entry.served_at if entry is not None else 0.0
        return choose(decision, entry, age, unhealthy(health), elsewhere)

    def served(
        self,
        conversation: Conversation | None,
        target: Target | None,
        settings: AffinitySettings,
        route: str,
    ) -> None:
        """Record the target that completed a turn of `conversation` routed by `route`."""
        if settings.enabled and conversation is not None and target is not None:
            now = self._clock()
            self.table.put(route_key(conversation, route), target, now, settings.ttl)
            self.table.put(conversation.key, target, now, settings.ttl)
