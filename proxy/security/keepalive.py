"""Idle keep-alive connections, capped per peer.

aiohttp keeps a connection open after each response for the next request (for up to an hour by
default), so one peer could hold thousands of idle sockets and the daemon's file descriptors
with them. Each peer may keep `per_peer` connections alive; the response that would make one
more ends with `Connection: close`. Connections are remembered only while open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]
MAX_PEERS_REMEMBERED = 4096


def keepalive_cap(per_peer: int) -> Hook:
    """An `on_response_prepare` hook enforcing the cap."""
    kept: dict[str, set[asyncio.BaseTransport]] = {}

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        peer = request.remote or ""
        known = kept.get(peer, set())
        if transport in known:  # a kept connection's next request: nothing changes
            return
        open_ones = {t for t in known if not t.is_closing()}
        if len(open_ones) >= per_peer:
            response.force_close()
            response.headers["connection"] = "close"  # computed before this hook runs
            return
        open_ones.add(transport)
        kept[peer] = open_ones
        if len(kept) > MAX_PEERS_REMEMBERED:
            for name in [p for p, ts in kept.items() if all(t.is_closing() for t in ts)]:
                del kept[name]

    return hook
