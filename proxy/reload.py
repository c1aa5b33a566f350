"""Reloading the config file into a serving daemon: on SIGHUP (what `llmproxy reload` sends)
and, when asked for, whenever the file or the `.env` next to it changes.

Both run `LiveConfig.reload`: a new config that does not load is refused with its key path and
the running one stays; the outcome is logged and reported by `/health` (`config.last_reload`).
The watch polls modification times (no dependency, works on every filesystem); a change is
applied once the file has stopped changing for one interval, so an editor's half-written save
is not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from aiohttp import web

from proxy.appkeys import LIVE
from proxy.config import Config
from proxy.config.env import DOTENV_NAME
from proxy.live import ReloadOutcome

log = logging.getLogger("llmproxy.reload")


def config_file(config: Config) -> Path | None:
    path = Path(config.source)
    return path if path.is_file() else None


def install_reload(
    app: web.Application,
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    watch_interval: float | None = None,
) -> None:
    """Reload `path` on SIGHUP, and every `watch_interval` seconds when it changed. Without a
    file SIGHUP is still handled (its default action would end the daemon): it says so."""

    def reload(reason: str) -> ReloadOutcome:
        outcome = app[LIVE].reload(path, os.environ if env is None else env)
        if outcome.ok:
            restart = ", ".join(outcome.restart_required)
            log.info(
                "%s: %s%s",
                reason,
                outcome.message,
                f"; restart needed for {restart}" if restart else "",
            )
        else:
            log.error("%s: %s", reason, outcome.message)
        return outcome

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        hup = getattr(signal, "SIGHUP", None)  # not on Windows
        if hup is not None:
            loop.add_signal_handler(hup, reload, "SIGHUP")
        watcher = (
            asyncio.create_task(_watch(path, watch_interval, reload))
            if watch_interval and path is not None
            else None
        )
        try:
            yield
        finally:
            if hup is not None:
                loop.remove_signal_handler(hup)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app.cleanup_ctx.append(lifecycle)


def _stamp(path: Path) -> tuple[tuple[int, int] | None, ...]:
    stamps: list[tuple[int, int] | None] = []
    for file in (path, path.parent / DOTENV_NAME):
        try:
            info = file.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((info.st_mtime_ns, info.st_size))
    return tuple(stamps)


async def _watch(path: Path, interval: float, reload: Callable[[str], ReloadOutcome]) -> None:
    applied = _stamp(path)
    seen = applied
    while True:
        await asyncio.sleep(interval)
        now = _stamp(path)
        if now != seen:  # still being written: wait until it holds still for one interval
            seen = now
            continue
        if now != applied:
            applied = now
            reload("file changed")
