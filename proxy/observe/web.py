"""The read-outs the daemon serves: `/metrics`, `/health/live`, `/health/ready`, and the live
status page `/ui` with the JSON it polls (`/ui/api/status`).

The page is static (HTML, one script, one stylesheet, all from this package) and fills itself
with `textContent` only, so a hostile model name is shown as text; its Content-Security-Policy
allows nothing but those files and requests to this daemon. `/metrics` and `/ui/api/` are
guarded like the API (the client key, when one is configured); the page itself holds no data.
With a client key, open `/ui#key=<key>`: the fragment never leaves the browser.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from proxy.appkeys import HEALTH, LIVE, OBSERVER, STATE
from proxy.config import Config
from proxy.health import BreakerState, TargetStatus
from proxy.types import Chain, JSONObject, Target

RECENT_ON_PAGE = 50
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
UI_HEADERS = {
    "content-security-policy": UI_CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_STATIC = {
    "/ui": ("ui.html", "text/html"),
    "/ui/ui.js": ("ui.js", "text/javascript"),
    "/ui/ui.css": ("ui.css", "text/css"),
}


def install_observe_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    for path, (name, content_type) in _STATIC.items():
        app.router.add_get(path, _static(name, content_type))
    app.router.add_get("/ui/api/status", status)


async def metrics(request: web.Request) -> web.Response:
    observer = request.app[OBSERVER]
    metrics = observer.metrics
    if metrics is None:
        raise web.HTTPNotFound()  # `[metrics] enabled = false`: as if there were no such route
    observer.flush()  # a scrape counts every request that has ended, not the batch's timer
    body = metrics.render()
    return web.Response(
        body=body, headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"}
    )


async def live(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return _json({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Config loaded and at least one routed target that health would let a request reach."""
    config = request.app[LIVE].config
    health = request.app[HEALTH]
    targets = known_targets(config)
    usable = [t for t in targets if _usable(health.status(t))]
    body: JSONObject = {
        "status": "ready" if usable else "unavailable",
        "config": config.source,
        "targets": len(targets),
        "usable_targets": len(usable),
        # Not a readiness condition: without Redis requests flow on local state.
        "state": {
            k: v for k, v in request.app[STATE].status().items() if k in ("backend", "redis")
        },
    }
    return _json(body, status=200 if usable else 503)


def _static(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The page's files, read once when the app is built (no disk reads while serving). Read
    beside this module: `importlib.resources` would load zipfile for a package that is never
    zipped (0.4 MB a daemon would hold)."""
    data = (Path(__file__).parent / "static" / name).read_bytes()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(
            body=data, content_type=content_type, charset="utf-8", headers=UI_HEADERS
        )

    return serve


async def status(request: web.Request) -> web.Response:
    config = request.app[LIVE].config
    health = request.app[HEALTH]
    now = time.time()
    seen = {s.target: s for s in health.snapshot()}
    targets = [
        target_view(seen.get(t) or health.status(t), now, health.recovers_in(t))
        for t in dict.fromkeys([*known_targets(config), *seen])
    ]
    recent = request.app[OBSERVER].recent.newest(RECENT_ON_PAGE)
    body = {"now": now, "targets": targets, "requests": [r.to_json() for r in recent]}
    return _json(body, headers={"cache-control": "no-store"})


def known_targets(config: Config) -> list[Target]:
    """Every target some route or mapping can send a request to, in config order."""
    chains: list[Chain] = [*config.router.routes.values()]
    chains.extend(m.to for m in config.router.model_mappings)
    return list(dict.fromkeys(t for chain in chains for t in chain))


def _usable(status: TargetStatus) -> bool:
    return status.cooldown_left == 0 and status.state != BreakerState.OPEN


def target_view(status: TargetStatus, now: float, retry_in: float) -> JSONObject:
    return {
        "target": str(status.target),
        "health": health_words(status, now, retry_in),
        "healthy": _usable(status) and status.state == BreakerState.CLOSED,
        "requests": status.requests,
        "success_rate": status.success_rate,
        "latency_ms": status.latency_ms,
        "ttft_ms": status.ttft_ms,
    }


def health_words(status: TargetStatus, now: float, retry_in: float) -> str:
    """`healthy`, `failing since 12:03:10, retry at 12:03:15 (server_error)`, and so on: what a
    person needs, not breaker jargon."""
    reason = f" ({status.reason})" if status.reason else ""
    if status.cooldown_left > 0:
        return f"resting until {_clock(now + status.cooldown_left)}{reason}"
    if status.state == BreakerState.OPEN and status.failing_for is not None:
        return (
            f"failing since {_clock(now - status.failing_for)}, retry at "
            f"{_clock(now + retry_in)}{reason}"
        )
    if status.state == BreakerState.HALF_OPEN:
        return f"failing, being retried now{reason}"
    if status.requests == 0:
        return "not used yet"
    return "healthy"


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


def _json(
    body: JSONObject, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
