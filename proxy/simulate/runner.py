"""Running simulated providers: in the caller's event loop, or in a background thread.

async with run_simulated([zai, minimax]) as sims:
    sims["zai"].base_url          # http://127.0.0.1:PORT/v1

with SimulatorThread([zai, minimax]) as sims:   # for sync callers (CLI `--simulate`)
    ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence

from proxy.loop_thread import LoopThread
from proxy.simulate.provider import SimulatedProvider

__all__ = ["SimulatedProvider", "SimulatorThread", "run_simulated"]


@contextlib.asynccontextmanager
async def run_simulated(
    sims: Iterable[SimulatedProvider], *, host: str = "127.0.0.1"
) -> AsyncIterator[dict[str, SimulatedProvider]]:
    """Start every provider on an ephemeral port; stop them all on exit, even on error."""
    providers = list(sims)
    names = [s.name for s in providers]
    if len(set(names)) != len(names):
        raise ValueError(f"simulated provider names must be unique: {names}")
    started: list[SimulatedProvider] = []
    try:
        for sim in providers:
            await sim.start(host)
            started.append(sim)
        yield {s.name: s for s in providers}
    finally:
        await asyncio.gather(*(s.stop() for s in reversed(started)))


class SimulatorThread(LoopThread[dict[str, SimulatedProvider]]):
    """Simulated providers served from their own event loop in a daemon thread.

    `start()` returns once every provider listens; `stop()` shuts them down and joins the
    thread. The providers' plans and latency can be changed from the calling thread.
    """

    def __init__(self, sims: Sequence[SimulatedProvider], *, host: str = "127.0.0.1") -> None:
        self.sims = {s.name: s for s in sims}
        super().__init__(
            lambda: run_simulated(self.sims.values(), host=host), name="llmproxy-simulator"
        )

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: sim.base_url for name, sim in self.sims.items()}
