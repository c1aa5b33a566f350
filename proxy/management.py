"""The management API, mounted only when `[management] enabled = true`.

Every request must come from a loopback peer unless `allow_remote = true` (checked before the
body is read, whatever address the daemon listens on) and carry the secret in
`X-Management-Key` or `Authorization: Bearer`, compared in constant time.

    GET    /v0/management/config             the running config, secrets redacted
    PUT    /v0/management/router             merge keys into [router] (null removes one)
    PUT    /v0/management/providers/{name}   merge into, or add, one provider
    DELETE /v0/management/providers/{name}   remove one provider
    POST   /v0/management/config/reload      re-read the config file
    GET    /v0/management/health             uptime, config source, health of every target
    GET    /v0/management/logs/level         the `llmproxy` logger's level
    PUT    /v0/management/logs/level         {"level": "debug"} changes it at once

What a change may not do (read the environment, move a stored key to a new URL, name a file
outside llmproxy's directories) is decided in `proxy.management_rules`.

A change is made on the file's own text (comments and `$VAR` references kept), validated by
the real config parser, written atomically with mode 0600, and only then applied to the running
app. A secret shown as "[REDACTED]" and sent back unchanged keeps its current value. Settings
fixed at startup (listen address, client keys, health settings, [security], [management],
[state]) keep their running values and are listed under `restart_required` when the file
changes them. With `[state] backend = "redis"` a change validated and applied here is
published, and every other instance applies the same edit to its own file (`apply_published`).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from tomlkit.toml_document import TOMLDocument

from proxy.appkeys import HEALTH, LIVE, STATE
from proxy.config import TIMEOUT_KEYS, Config
from proxy.config_writer import (
    REDACTED,
    parse_document,
    remove_provider,
    render,
    set_router,
    upsert_provider,
    write_atomic,
)
from proxy.errors import ConfigError
from proxy.frozen import fields, frozen, is_frozen
from proxy.live import replacement
from proxy.management_rules import check_credentials, check_provider_change, check_router_change
from proxy.security.auth import is_loopback_address
from proxy.security.limits import BODY
from proxy.security.rejections import error_response
from proxy.security.settings import ManagementSettings
from proxy.types import Chain, JSONObject, Target

log = logging.getLogger("llmproxy.management")

PREFIX = "/v0/management"
ROUTE_PREFIX = "management:"
LOGGER = "llmproxy"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Edit = Callable[[TOMLDocument], list[str]]
Vet = Callable[[Config, Config], None]


@frozen
class ManagementState:
    path: Path | None
    """The config file edits go to; None when the daemon was given a config without a file."""
    env: Mapping[str, str] | None
    """Where `$VAR`s expand from on reload; None: the process environment at that moment."""
    lock: asyncio.Lock
    started: float


MANAGEMENT = web.AppKey("management", ManagementState)


def config_path(config: Config) -> Path | None:
    path = Path(config.source)
    return path if path.is_file() else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def management_guard(settings: ManagementSettings) -> Middleware:
    """Peer check, then secret check, for every management path and route."""
    secret = _digest(settings.secret_key)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_name = request.match_info.route.name or ""
        if not (
            route_name.startswith(ROUTE_PREFIX)
            or request.path == PREFIX
            or request.path.startswith(PREFIX + "/")
        ):
            return await handler(request)
        if not settings.allow_remote and not is_loopback_address(request.remote):
            return error_response(
                request,
                403,
                "the management API answers loopback peers only "
                "(set [management] allow_remote = true to change that)",
                code="remote_not_allowed",
            )
        presented = request.headers.get("x-management-key", "")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not presented and scheme.lower() == "bearer":
            presented = token.strip()
        if not hmac.compare_digest(_digest(presented), secret) or not presented:
            return error_response(
                request, 401, "invalid or missing management key", code="invalid_management_key"
            )
        return await handler(request)

    return middleware


def install_management(
    app: web.Application, config: Config, env: Mapping[str, str] | None = None
) -> None:
    app[MANAGEMENT] = ManagementState(config_path(config), env, asyncio.Lock(), time.monotonic())
    routes = (
        ("GET", "/config", get_config),
        ("PUT", "/router", put_router),
        ("PUT", "/providers/{name}", put_provider),
        ("DELETE", "/providers/{name}", delete_provider),
        ("POST", "/config/reload", reload_config),
        ("GET", "/health", get_health),
        ("GET", "/logs/level", get_log_level),
        ("PUT", "/logs/level", put_log_level),
    )
    for method, path, handler in routes:
        name = f"{ROUTE_PREFIX}{method.lower()}:{path.strip('/').replace('/', '.')}"
        name = name.replace("{", "").replace("}", "")
        app.router.add_route(method, PREFIX + path, handler, name=name)


# --- handlers ----------------------------------------------------------------------------------


async def get_config(request: web.Request) -> web.Response:
    return _json({"config": redacted_config(request.app[LIVE].config)})


async def put_router(request: web.Request) -> web.Response:
    change = {"op": "router", "changes": _object_body(request)}
    return await _apply(request, change, "router updated")


async def put_provider(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    change = {"op": "provider", "name": name, "changes": _object_body(request)}
    return await _apply(request, change, f"provider {name} set")


async def delete_provider(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await _apply(
        request, {"op": "delete_provider", "name": name}, f"provider {name} removed"
    )


async def reload_config(request: web.Request) -> web.Response:
    return await _apply(request, {"op": "reload"}, "reloaded from disk")


async def get_health(request: web.Request) -> web.Response:
    state = request.app[MANAGEMENT]
    running = request.app[LIVE].current
    return _json(
        {
            "status": "ok",
            "uptime_seconds": round(time.monotonic() - state.started, 1),
            "config_source": running.config.source,
            "config_applied_at": round(running.since, 3),
            "providers": [p.name for p in running.config.providers],
            "targets": [_plain(status) for status in request.app[HEALTH].snapshot()],
        }
    )


async def get_log_level(request: web.Request) -> web.Response:
    level = logging.getLogger(LOGGER).getEffectiveLevel()
    return _json({"logger": LOGGER, "level": logging.getLevelName(level).lower()})


async def put_log_level(request: web.Request) -> web.Response:
    body = _object_body(request)
    level = body.get("level")
    if not isinstance(level, str) or level.lower() not in LEVELS:
        return error_response(
            request, 400, f"'level' must be one of {', '.join(LEVELS)}", param="level"
        )
    logging.getLogger(LOGGER).setLevel(LEVELS[level.lower()])
    log.warning("log level set to %s through the management API", level.lower())
    return await get_log_level(request)


# --- applying a change -------------------------------------------------------------------------


def _edit_for(change: JSONObject, listed: Collection[str]) -> tuple[Edit | None, Vet | None]:
    """The file edit a change stands for (None: re-read the file as it is), and the check of
    the config it makes against the running one; `listed`: the running secret variables."""
    op, name, changes = change.get("op"), str(change.get("name", "")), change.get("changes", {})
    if not isinstance(changes, dict):
        raise ChangeRefused(400, "a change's 'changes' must be an object")
    if op == "reload":
        return None, None
    if op == "router":

        def router(document: TOMLDocument) -> list[str]:
            check_router_change(changes)
            set_router(document, changes)
            return []

        return router, None
    if op == "provider":

        def provider(document: TOMLDocument) -> list[str]:
            check_provider_change(document, name, changes, listed)
            created = upsert_provider(document, name, changes)
            key = changes.get("api_key")
            warnings = []
            if isinstance(key, str) and key and key != REDACTED and not key.startswith("$"):
                warnings.append(
                    f"provider {name!r}: api_key is written to the file as given; "
                    "a $VAR reference would keep the key itself out of the file"
                )
            return [
                f"provider {name!r} added" if created else f"provider {name!r} updated",
                *warnings,
            ]

        def vet(old: Config, new: Config) -> None:
            check_credentials(old, new, name, changes)

        return provider, vet
    if op == "delete_provider":

        def delete(document: TOMLDocument) -> list[str]:
            remove_provider(document, name)
            return [f"provider {name!r} removed"]

        return delete, None
    raise ChangeRefused(400, f"unknown change {op!r}")


class ChangeRefused(Exception):
    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


@frozen
class Applied:
    written: bool
    notes: list[str]
    restart: list[str]
    config: Config


async def _apply(request: web.Request, change: JSONObject, what: str) -> web.Response:
    try:
        applied = await apply_change(request.app, change)
    except ChangeRefused as exc:
        return error_response(request, exc.status, exc.message, code=exc.code, param=exc.param)
    request.app[STATE].publish_config(change)  # validated here; the others apply it too
    restart = applied.restart
    log.info(
        "management: %s (%s)%s",
        what,
        request.app[MANAGEMENT].path,
        f"; restart needed for {', '.join(restart)}" if restart else "",
    )
    return _json(
        {
            "status": "applied",
            "written": applied.written,
            "notes": applied.notes,
            "restart_required": restart,
            "config": redacted_config(applied.config),
        }
    )


async def apply_published(app: web.Application, change: JSONObject) -> None:
    """A change another instance validated and applied: the same edit, on this file."""
    try:
        applied = await apply_change(app, change)
    except ChangeRefused as exc:
        log.error(
            "management: a change from another instance was not applied here: %s", exc.message
        )
        return
    log.info(
        "management: applied a %s change from another instance%s",
        change.get("op"),
        " (file written)" if applied.written else "",
    )


async def apply_change(app: web.Application, change: JSONObject) -> Applied:
    """Edit the config file, validate, write it atomically, then swap the running config."""
    state = app[MANAGEMENT]
    if state.path is None:
        raise ChangeRefused(
            409,
            "the daemon was not started from a config file: there is nothing to edit or reload",
            code="no_config_file",
        )
    live = app[LIVE]
    async with state.lock:  # one read-edit-write at a time, so no change is lost
        try:
            text = state.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ChangeRefused(
                409, f"cannot read {state.path}: {exc}", code="config_unreadable"
            ) from exc
        try:
            edit, vet = _edit_for(change, live.config.management.secret_variables)
            new_text, notes = text, []
            if edit is not None:
                document = parse_document(text)
                notes = edit(document)
                new_text = render(document)
            env = state.env if state.env is not None else os.environ
            config, restart = replacement(new_text, state.path, env, live.config)
            if vet is not None:
                vet(live.config, config)
        except ConfigError as exc:
            raise ChangeRefused(
                400,
                f"config rejected, nothing changed: {exc}",
                code="invalid_config",
                param=exc.key or None,
            ) from exc
        written = new_text != text
        if written:
            try:
                write_atomic(state.path, new_text)
            except OSError as exc:
                log.error("management: cannot write %s: %s", state.path, exc.strerror)
                raise ChangeRefused(
                    500,
                    f"cannot write {state.path}: {exc.strerror}; nothing changed",
                    code="write_failed",
                ) from exc
        live.replace(config)
    return Applied(written, notes, restart, config)


# --- rendering ---------------------------------------------------------------------------------


def redacted_config(config: Config) -> JSONObject:
    """The running config as JSON; every secret replaced by "[REDACTED]"."""
    proxy, router = config.proxy, config.router
    routes: dict[str, Any] = {s.value: _chain(c) for s, c in router.routes.items()}
    return {
        "source": config.source,
        "proxy": {
            "host": proxy.host,
            "port": proxy.port,
            "api_keys": [REDACTED for _ in proxy.api_keys],
            "timeout_ms": round(proxy.total_timeout * 1000),
            "retry_after_cap_ms": round(proxy.retry_after_cap * 1000),
            "timeouts": {
                key: round(getattr(proxy.timeouts, name) * 1000)
                for key, name in TIMEOUT_KEYS.items()
            },
        },
        "router": {
            **routes,
            "long_context_threshold": router.long_context_threshold,
            "background_model_pattern": router.background_model_pattern,
            "model_mappings": [
                {"from": m.pattern, "to": _chain(m.to)} for m in router.model_mappings
            ],
        },
        "providers": [
            {
                "name": p.name,
                "api_base_url": p.api_base_url,
                "format": p.format.value,
                "models": list(p.models),
                "api_key": REDACTED if p.api_key else "",
                "headers": {name: REDACTED for name in p.headers},
                "prefill": p.prefill,
                "allow_private_network": p.allow_private_network,
            }
            for p in config.providers
        ],
        "security": _plain(config.security),
        "management": {
            "enabled": config.management.enabled,
            "allow_remote": config.management.allow_remote,
            "secret_key": REDACTED if config.management.secret_key else "",
            "secret_variables": list(config.management.secret_variables),
        },
    }


def _chain(chain: Chain) -> str:
    return "|".join(str(target) for target in chain)


def _plain(value: Any) -> Any:
    """Frozen values as JSON values (targets as `provider,model`, enums as their value)."""
    if isinstance(value, Target):
        return str(value)
    if is_frozen(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.repr}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _object_body(request: web.Request) -> dict[str, Any]:
    body = request.get(BODY)
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="expected a JSON object body")
    return body


def _json(body: JSONObject, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"cache-control": "no-store"},
    )
