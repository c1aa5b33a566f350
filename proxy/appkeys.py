"""Typed keys for what the app owns (aiohttp `web.AppKey`): no module-level state elsewhere."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxy.config import Config
from proxy.fallback import FallbackRunner
from proxy.health import HealthRegistry

CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)
RUNNER = web.AppKey("runner", FallbackRunner)
HEALTH = web.AppKey("health", HealthRegistry)
