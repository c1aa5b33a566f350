"""Running simulated providers: in the caller's event loop, or in a background thread.

async with run_simulated([zai, minimax]) as sims:
    sims["zai"].base_url          # http://127.0.0.1:PORT/v1

with SimulatorThread([zai, minimax]) as sims:   # for sync callers (CLI `--simulate`)
    ...
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType

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


class SimulatorThread:
    """Simulated providers served from their own event loop in a daemon thread.

    `start()` returns once every provider listens; `stop()` shuts them down and joins the
    thread. The providers' plans and latency can be changed from the calling thread.
    """

    def __init__(self, sims: Sequence[SimulatedProvider], *, host: str = "127.0.0.1") -> None:
        self.sims = {s.name: s for s in sims}
        self._host = host
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: sim.base_url for name, sim in self.sims.items()}

    def start(self, timeout: float = 10.0) -> dict[str, SimulatedProvider]:
        if self._thread is not None:
            raise RuntimeError("SimulatorThread already started")
        self._thread = threading.Thread(target=self._run, name="llmproxy-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulated providers did not start in time")
        if self._error is not None:
            raise RuntimeError("simulated providers failed to start") from self._error
        return self.sims

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            # The loop may already be gone if the thread died on startup.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> dict[str, SimulatedProvider]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            self._ready.set()  # never leave start() waiting on a thread that died
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with run_simulated(self.sims.values(), host=self._host):
                self._ready.set()
                await self._stop.wait()
        except OSError as exc:  # e.g. the host cannot be bound: reported by start()
            self._error = exc
