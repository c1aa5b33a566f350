"""Typed `[state]` settings: where the daemon keeps what several instances must share.

[state]
backend = "memory"              memory (this process only) or redis (shared)
url = "$LLMPROXY_REDIS_URL"     redis://[:password@]host[:port][/db], rediss:// for TLS,
                                unix:///path/redis.sock; required for backend = "redis"
prefix = "llmproxy"             key and channel prefix, so deployments can share one Redis
rate_limits_when_down = "open"  open: local buckets decide while Redis is unreachable;
                                closed: limited requests get 503 until it is back
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from proxy.errors import ConfigError
from proxy.frozen import field, frozen

if TYPE_CHECKING:
    from proxy.config.reader import TableReader

_KEYS = ("backend", "url", "prefix", "rate_limits_when_down")
_SCHEMES = ("redis", "rediss", "unix")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Backend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


@frozen
class StateSettings:
    backend: Backend = Backend.MEMORY
    url: str = field(default="", repr=False)
    """May hold a password: never logged (the redactor knows it) and never shown."""
    prefix: str = "llmproxy"
    fail_closed: bool = False
    """Refuse rate-limited requests while Redis is unreachable instead of limiting locally."""

    @property
    def shared(self) -> bool:
        return self.backend is Backend.REDIS


def parse_state(top: TableReader) -> StateSettings:
    t = top.table("state", _KEYS)
    if t is None:
        return StateSettings()
    name = t.string("backend", Backend.MEMORY.value)
    if name not in tuple(Backend):
        raise ConfigError(t.key("backend"), f"unknown backend {name!r} (known: memory, redis)")
    backend = Backend(name)
    url: str = t.string("url", "")
    if backend is Backend.REDIS:
        if not url.strip():
            raise ConfigError(
                t.key("url"),
                'required when backend = "redis", e.g. '
                'url = "redis://127.0.0.1:6379/0" or "$LLMPROXY_REDIS_URL"',
            )
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES:
            raise ConfigError(
                t.key("url"),
                f"expected a redis://, rediss:// or unix:// URL, got scheme {scheme!r}",
            )
    prefix: str = t.string("prefix", "llmproxy")
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(t.key("prefix"), "use 1-64 letters, digits and _ . : -")
    when_down: str = t.string("rate_limits_when_down", "open")
    if when_down not in ("open", "closed"):
        raise ConfigError(
            t.key("rate_limits_when_down"), f"expected open or closed, got {when_down!r}"
        )
    return StateSettings(backend, url, prefix, when_down == "closed")
