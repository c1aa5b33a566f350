"""Typed `[security]` and `[management]` settings, read from the config file by `proxy.config`.

[security.rate_limiting]          absent: no limits. Present: enabled = true by default
enabled = true
requests_per_minute = 60          per client key (0 = no limit)
concurrent_requests = 10          per client key (0 = no limit)
tokens_per_minute = 0             per client key, estimated input tokens (0 = no limit)
[security.rate_limiting.global]   the same three keys, across all clients (default: none)

[security.ssrf_protection]        see proxy/security/ssrf.py
allow_localhost = false
allow_private_ips = false

[security.limits]
max_body_bytes = 33554432
max_json_depth = 128
body_read_timeout_ms = 30000

[management]                      the /v0/management API (off by default)
enabled = false
secret_key = "$LLMPROXY_MANAGEMENT_KEY"   required when enabled
allow_remote = false              non-loopback peers get 403 unless true
secret_variables = []             variables the API may name in a provider's secrets,
                                  besides those that provider's secrets already name
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from proxy.config.reader import config_warning
from proxy.errors import ConfigError
from proxy.frozen import field, frozen

if TYPE_CHECKING:
    from proxy.config.reader import TableReader

MIN_SECRET_LENGTH = 16


@frozen
class Rate:
    """Limits for one scope (a client key, or everyone). None means no limit."""

    requests_per_minute: int | None = None
    concurrent_requests: int | None = None
    tokens_per_minute: int | None = None

    @property
    def unlimited(self) -> bool:
        return (self.requests_per_minute, self.concurrent_requests, self.tokens_per_minute) == (
            None,
            None,
            None,
        )


REFERENCE_PER_CLIENT = Rate(requests_per_minute=60, concurrent_requests=10)


@frozen
class RateLimitSettings:
    enabled: bool = False
    per_client: Rate = field(default_factory=Rate)
    overall: Rate = field(default_factory=Rate)

    @property
    def active(self) -> bool:
        return self.enabled and not (self.per_client.unlimited and self.overall.unlimited)


@frozen
class SsrfSettings:
    allow_localhost: bool = False
    allow_private_ips: bool = False


@frozen
class RequestLimits:
    max_body_bytes: int = 32 * 1024 * 1024
    max_json_depth: int = 128
    """Deep enough for any real request; shallow enough that no recursive walker can overflow."""
    body_read_timeout: float = 30.0
    """Seconds a client may take to send its whole body (slow-client protection)."""
    keepalive_per_peer: int = 100
    """Connections one peer may keep open between requests."""
    max_answer_bytes: int = 64 * 1024 * 1024
    """The largest upstream body read whole (a non-streaming answer, an error, a model list)."""


@frozen
class SecuritySettings:
    rate_limiting: RateLimitSettings = field(default_factory=RateLimitSettings)
    ssrf: SsrfSettings = field(default_factory=SsrfSettings)
    limits: RequestLimits = field(default_factory=RequestLimits)


@frozen
class ManagementSettings:
    enabled: bool = False
    secret_key: str = field(default="", repr=False)
    allow_remote: bool = False
    secret_variables: tuple[str, ...] = ()
    """Environment variables a management change may reference in any provider's secrets."""


_SECURITY_KEYS = ("rate_limiting", "ssrf_protection", "limits")
_RATE_KEYS = ("requests_per_minute", "concurrent_requests", "tokens_per_minute")
_SSRF_KEYS = ("enabled", "allow_localhost", "allow_private_ips")
_LIMIT_KEYS = (
    "max_body_bytes",
    "max_json_depth",
    "body_read_timeout_ms",
    "max_answer_bytes",
    "keepalive_per_peer",
)
_MANAGEMENT_KEYS = ("enabled", "secret_key", "allow_remote", "secret_variables")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_security(top: TableReader) -> SecuritySettings:
    t = top.table("security", _SECURITY_KEYS)
    if t is None:
        return SecuritySettings()
    return SecuritySettings(_rate_limiting(t), _ssrf(t), _limits(t))


def _rate(t: TableReader, defaults: Rate) -> Rate:
    def one(name: str, default: int | None) -> int | None:
        value: int | None = t.integer(name, default, low=0)
        return value or None

    return Rate(*(one(name, getattr(defaults, name)) for name in _RATE_KEYS))


def _rate_limiting(security: TableReader) -> RateLimitSettings:
    t = security.table("rate_limiting", ("enabled", *_RATE_KEYS, "global"))
    if t is None:
        return RateLimitSettings()
    overall = t.table("global", _RATE_KEYS)
    return RateLimitSettings(
        enabled=t.boolean("enabled", True),
        per_client=_rate(t, REFERENCE_PER_CLIENT),
        overall=_rate(overall, Rate()) if overall is not None else Rate(),
    )


def _ssrf(security: TableReader) -> SsrfSettings:
    t = security.table("ssrf_protection", _SSRF_KEYS)
    if t is None:
        return SsrfSettings()
    if not t.boolean("enabled", True):
        raise ConfigError(
            t.key("enabled"),
            "SSRF protection cannot be turned off; allow local providers with "
            "allow_private_network = true on the provider, or allow_localhost / "
            "allow_private_ips here",
        )
    return SsrfSettings(t.boolean("allow_localhost", False), t.boolean("allow_private_ips", False))


def _limits(security: TableReader) -> RequestLimits:
    t = security.table("limits", _LIMIT_KEYS)
    if t is None:
        return RequestLimits()
    default = RequestLimits()
    return RequestLimits(
        max_body_bytes=t.integer("max_body_bytes", default.max_body_bytes, low=1024, high=1024**3),
        max_json_depth=t.integer("max_json_depth", default.max_json_depth, low=8, high=1000),
        body_read_timeout=t.millis("body_read_timeout_ms", default.body_read_timeout * 1000),
        keepalive_per_peer=t.integer(
            "keepalive_per_peer", default.keepalive_per_peer, low=1, high=100000
        ),
        max_answer_bytes=t.integer(
            "max_answer_bytes", default.max_answer_bytes, low=1024, high=1024**3
        ),
    )


def parse_management(top: TableReader) -> ManagementSettings:
    t = top.table("management", _MANAGEMENT_KEYS, compat=("logging",))
    if t is None:
        return ManagementSettings()
    enabled: bool = t.boolean("enabled", False)
    secret: str = t.string("secret_key", "")
    if enabled and not secret.strip():
        raise ConfigError(
            t.key("secret_key"),
            "required when [management] enabled = true (the API can rewrite providers and "
            'their keys); set it, e.g. secret_key = "$LLMPROXY_MANAGEMENT_KEY"',
        )
    if enabled and len(secret) < MIN_SECRET_LENGTH:
        config_warning(
            "%s: shorter than %d characters; use a long random secret",
            t.key("secret_key"),
            MIN_SECRET_LENGTH,
        )
    names: list[str] = t.strings("secret_variables", [])
    for index, name in enumerate(names):
        if not _VARIABLE_NAME.fullmatch(name):  # the text itself may be an expanded secret
            raise ConfigError(
                f"{t.key('secret_variables')}[{index}]",
                'expected a variable name without "$", e.g. "NEW_PROVIDER_KEY"',
            )
    return ManagementSettings(enabled, secret, t.boolean("allow_remote", False), tuple(names))
