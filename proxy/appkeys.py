"""Typed keys for what the app owns (aiohttp `web.AppKey`): no module-level state elsewhere.

The config and the fallback runner built from it live in `LIVE` (they can be replaced while the
daemon runs); the health registry, the affinity table and the observer
(log line, journal, metrics, recent requests) outlive every config change.
"""

from __future__ import annotations

from aiohttp import web

from proxy.affinity import Affinity
from proxy.health import HealthRegistry
from proxy.live import LiveConfig
from proxy.observe.observer import Observer
from proxy.state.backend import SharedState
from proxy.tokens import TokenEstimator

HEALTH = web.AppKey("health", HealthRegistry)
LIVE = web.AppKey("live", LiveConfig)
STATE: web.AppKey[SharedState] = web.AppKey("state")
"""Where what several instances share lives: this process (memory) or Redis."""
OBSERVER = web.AppKey("observer", Observer)
AFFINITY = web.AppKey("affinity", Affinity)
TOKENS = web.AppKey("tokens", TokenEstimator)
"""Input-token estimates, remembering long strings across requests."""
OPERATOR = web.AppKey("operator", bool)
"""Every client of this app is its operator (the CLI's in-process app): responses carry each
attempt's full detail (`x-llmproxy-attempt-details`)."""
