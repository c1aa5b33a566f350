"""Giving memory back once the daemon goes quiet after a burst.

A burst of requests leaves what its peak used in the C library's heap: the requests' bodies,
buffers and serialised payloads are freed, but glibc keeps most freed pages mapped for the next
ones, so the daemon's RSS stays at the burst's peak. `malloc_trim(0)` hands them back (after 32
Claude Code-sized requests at a time: about 3 MB, in about a millisecond), and the next burst
takes pages back through page faults. So it runs once per burst, when an interval of `QUIET`
seconds brought no new request, or no more than `LIGHT` after at least `BURST` since the last
trim (a health probe or a metrics scrape every second must not keep a burst's pages forever):
never while more than `LIGHT` requests an interval keep coming. Python's own allocator
(objects up to 512 bytes) returns an arena only once all of it is free, and has no trim.

Only where the C library is glibc: elsewhere (musl, macOS, Windows) there is nothing to call,
and nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("llmproxy.memory")

QUIET = 1.0
"""Seconds without a new request after which the burst before them is over."""
LIGHT = 4
"""New requests an interval may bring and still end a burst (probes, scrapes, a trickle)."""
BURST = 100
"""Requests since the last trim that make a light interval worth a trim: under a steady
trickle, a trim every hundred requests, not one a second."""


class Counts(Protocol):
    """What the trimmer reads of aiohttp's `web.Server`: the requests it has started."""

    @property
    def requests_count(self) -> int: ...


def malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # 0.3 MB, for the trim only

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def trim_when_quiet(server: Counts, trim: Callable[[], object], quiet: float = QUIET) -> None:
    """Run `trim` once after each burst of requests to `server`, when an interval of `quiet`
    seconds brought no new request (or no more than `LIGHT`, after `BURST` since the last
    trim); until cancelled. A request that is still running (a long stream) does not hold it
    back: trimming frees nothing in use."""
    seen = trimmed = server.requests_count
    while True:
        await asyncio.sleep(quiet)
        count = server.requests_count
        new, seen = count - seen, count
        if new > LIGHT or (new and count - trimmed < BURST):  # the burst goes on
            continue
        if count != trimmed:
            trimmed = count
            give_back(trim, "a burst")


def give_back(trim: Callable[[], object], after: str) -> None:
    """Run `trim`; at debug level, say what it gave back."""
    if not log.isEnabledFor(logging.DEBUG):
        trim()
        return
    before, started = _resident_mb(), time.perf_counter()
    trim()
    took = (time.perf_counter() - started) * 1000
    log.debug(
        "gave free memory back after %s: RSS %.1f -> %.1f MB (%.2f ms)",
        after,
        before,
        _resident_mb(),
        took,
    )


def _resident_mb() -> float:
    with open("/proc/self/statm", "rb") as statm:  # Linux, as glibc is; procfs, in memory
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
