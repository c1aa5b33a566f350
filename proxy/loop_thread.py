"""An async context manager kept open on its own event loop in a daemon thread, for sync code:
the CLI's in-process app (`cli._engine`) and the tests' simulated deployments."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopThread(Generic[T]):
    """Runs an async context manager in its own event loop on a daemon thread, for sync callers
    (the CLI's in-process app, the CLI test runner, which cannot run inside an event loop).

    with LoopThread(lambda: simulated_deployment(seed=3)) as deployment:
        deployment.url
    """

    def __init__(
        self,
        factory: Callable[[], contextlib.AbstractAsyncContextManager[T]],
        *,
        name: str = "llmproxy-loop",
    ) -> None:
        self._factory = factory
        self._name = name
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> T:
        if self._thread is not None:
            raise RuntimeError("LoopThread already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._name} did not start in time")
        if self._error is not None:
            raise RuntimeError(f"{self._name} failed to start") from self._error
        assert self._value is not None
        return self._value

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> T:
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
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self._factory() as value:
                self._value = value
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # e.g. the port is taken: reported by start(), in the caller
            self._error = exc
