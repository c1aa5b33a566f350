"""The daemon: `build_app(config)` wires routes, middleware and the one pooled client session."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.typedefs import Middleware

from proxy.affinity import Affinity
from proxy.appkeys import AFFINITY, HEALTH, LIVE, OBSERVER, OPERATOR, STATE, TOKENS
from proxy.config import GLOB_CHARS, Config
from proxy.errors import ClientRequestError
from proxy.fallback import FallbackRunner
from proxy.handlers import STREAM_STARTED, chat_completions, count_tokens, messages
from proxy.health import HealthRegistry
from proxy.live import LiveConfig
from proxy.logging_setup import Redactor
from proxy.observe.journal import Journal
from proxy.observe.metrics import Metrics
from proxy.observe.observer import Observer, observe_middleware, stamp_request_id
from proxy.observe.tracing import tracer_from_env
from proxy.observe.web import install_observe_routes
from proxy.providers.registry import Upstreams
from proxy.responses_handler import create_response, responses_websocket
from proxy.security.auth import CLIENT, ClientKeys, auth_middleware, is_loopback_address
from proxy.security.keepalive import keepalive_cap
from proxy.security.limits import limits_middleware
from proxy.security.outgoing import outgoing_client, redacted_logs
from proxy.security.ratelimit import RateLimiter, rate_limit_middleware
from proxy.security.rejections import error_response
from proxy.state import WORKER_ENV
from proxy.state.backend import open_state
from proxy.tokens import TokenEstimator
from proxy.types import JSONObject, Target

log = logging.getLogger("llmproxy.server")
SWITCH_INTERVAL = 0.0005

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost catch-all: every failure leaves as JSON in the client's dialect, never a
    trace and never aiohttp's HTML error page."""
    try:
        return await handler(request)
    except ClientRequestError as exc:
        return error_response(request, exc.status, exc.message, param=exc.param)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(
            request, exc.status, _http_error_message(request, exc), headers=_kept_headers(exc)
        )
    except ConnectionResetError:
        raise
    except Exception:  # the one catch-all: log it, answer in the client's dialect
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.get(STREAM_STARTED):
            # The headers went out: a second response inside the open body would corrupt it.
            # The stream's owner ends streams; here there is nothing left to write.
            raise
        return error_response(request, 500, "internal error in llmproxy")


def _http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no such endpoint: {request.method} {request.path[:200]}"
    if exc.status == 405:
        return f"method {request.method} is not allowed on {request.path[:200]}"
    if exc.status == 413:
        return "request body is too large"
    return exc.reason


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {"allow": exc.headers["allow"]} if "allow" in exc.headers else {}


async def models(request: web.Request) -> web.Response:
    """Ids a client can put in `model`: every `provider,model` and every mapping alias, in a
    shape both SDKs accept (OpenAI's list and Anthropic's page share `data`)."""
    running = request.app[LIVE].current
    config = running.config
    # When this list last changed: a fixed 0 reads as "1970" in clients that show it.
    created = int(running.since)
    created_at = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    entries: list[tuple[str, str, Target | None]] = []
    for provider in config.providers:
        entries.extend(
            (f"{provider.name},{m}", provider.name, Target(provider.name, m))
            for m in provider.models
            if not GLOB_CHARS.intersection(m)
        )
    for mapping in config.router.model_mappings:
        if not GLOB_CHARS.intersection(mapping.pattern):
            first = mapping.to[0] if mapping.to else None
            entries.append((mapping.pattern, "llmproxy", first))
    data = []
    for model_id, owner, target in entries:
        caps = config.capabilities(target) if target is not None else None
        data.append(
            {
                "id": model_id,
                "object": "model",
                "created": created,
                "owned_by": owner,
                "type": "model",
                "display_name": model_id,
                "created_at": created_at,
                "max_input_tokens": caps.context_window if caps else None,
                "max_tokens": caps.max_output_tokens if caps else None,
                "capabilities": None,
            }
        )
    body = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def health(request: web.Request) -> web.Response:
    """Liveness; for this machine's peers the pid, the last reload and the state backend
    (`llmproxy stop`, `reload`, `status`); for a client with a valid key (anyone, when no key
    is configured) the providers, whether Redis answers, and the live health of every target
    that has seen traffic. The registry is bounded, so is this."""
    live = request.app[LIVE]
    config = live.config
    body: JSONObject = {"status": "ok"}
    if is_loopback_address(request.remote):
        # For `llmproxy stop` and `reload` on this machine: the pid they signal, and the last
        # reload's outcome (its message names files and keys, which other peers need not see).
        last = live.last_reload
        body["pid"] = os.getpid()
        body["config"] = {
            "applied_at": round(live.current.since, 3),
            "last_reload": last.to_json() if last else None,
        }
        body["state"] = request.app[STATE].status()  # Redis, and why not (`llmproxy status`)
        body.update(_worker(request))
    if CLIENT in request:  # a key holder (anyone, without keys): the bounded detail
        body["providers"] = [p.name for p in config.providers]
        body.setdefault("state", _public(request.app[STATE].status()))
        body["targets"] = [
            {
                "target": str(status.target),
                "provider": status.target.provider,
                "model": status.target.model,
                "state": status.state.value,
                "cooldown_left": round(status.cooldown_left, 1),
                "reason": status.reason,
                "requests": status.requests,
                "success_rate": status.success_rate,
                "latency_ms": status.latency_ms,
                "ttft_ms": status.ttft_ms,
            }
            for status in request.app[HEALTH].snapshot()
        ]
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def build_app(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    rate_limiter: RateLimiter | None = None,
    dns: AbstractResolver | None = None,
    state_dir: Path | None = None,
    operator: bool = False,
) -> web.Application:
    """The daemon. `env`: where a management reload expands `$VAR`s (default: the process
    environment at that moment); `rate_limiter` replaces the in-memory limiter (a shared
    backend, or a test clock); `dns` is the resolver behind the SSRF guard (tests pass a fake);
    `state_dir` holds the request journal unless `[journal] path` names a file (with neither,
    nothing is journaled).
    `operator`: every client is the operator, who gets each attempt's full detail back.

    Middleware, outermost first: observe (request id, the request record) -> errors (everything
    leaves as JSON in the client's dialect) -> client keys -> management peer+secret -> body
    limits -> rate limits. Both auth layers come before the body is read, so an unauthenticated
    peer cannot make us buffer or parse it.
    """
    security = config.security
    redactor = Redactor.from_config(config)
    registry = HealthRegistry(config.proxy.health)
    journal_path = config.journal.location(state_dir)
    observer = Observer(
        Metrics(registry.snapshot) if config.metrics.enabled else None,
        Journal(journal_path, config.journal) if journal_path is not None else None,
        tracer_from_env(os.environ if env is None else env),
        flush_seconds=config.journal.flush_seconds,
    )
    middlewares: list[Middleware] = [
        observe_middleware(observer),
        errors_middleware,
        auth_middleware(ClientKeys(config.proxy.api_keys)),
    ]
    if config.management.enabled:
        # Only then: the management API edits TOML files (tomlkit, about 1 MB a daemon holds).
        from proxy.management import management_guard

        middlewares.append(management_guard(config.management))
    middlewares.append(limits_middleware(security.limits, redactor))
    state = open_state(config.state)
    limits = security.rate_limiting
    if rate_limiter is None and limits.active:
        rate_limiter = state.limiter(limits)
    tokens = TokenEstimator()
    if rate_limiter is not None:
        by_tokens = bool(limits.per_client.tokens_per_minute or limits.overall.tokens_per_minute)
        middlewares.append(
            rate_limit_middleware(rate_limiter, tokens=tokens if by_tokens else None)
        )
    app = web.Application(client_max_size=security.limits.max_body_bytes, middlewares=middlewares)
    app[TOKENS] = tokens
    app[HEALTH] = registry
    app[OBSERVER] = observer
    app[STATE] = state
    state.watch(registry)
    if observer.metrics is not None:
        observer.metrics.watch_state(lambda: state.status().get("redis", "up") == "up")
    app[AFFINITY] = Affinity(state.affinity_table(config.affinity))
    app[OPERATOR] = operator
    app.on_startup.append(_responsive_loop)
    app.on_response_prepare.append(_nosniff)
    app.on_response_prepare.append(stamp_request_id)
    app.on_response_prepare.append(keepalive_cap(security.limits.keepalive_per_peer))

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        with redacted_logs(redactor) as log_filter:
            client = outgoing_client(lambda: app[LIVE].current.policy, dns=dns)
            upstreams = Upstreams(client, security.limits.max_answer_bytes)

            def replaced() -> None:
                client.clear_dns_cache()  # judged under the previous policy
                log_filter.redactor = log_filter.redactor.with_config(app[LIVE].config)

            app[LIVE] = LiveConfig(
                config, lambda c: FallbackRunner(c, upstreams, app[HEALTH]), replaced
            )
            try:
                yield
            finally:
                await client.close()

    async def shared_state(app: web.Application) -> AsyncIterator[None]:
        await state.start(lambda change: _apply_published(app, change))
        try:
            yield
        finally:
            await state.close()

    app.cleanup_ctx.append(upstream_session)
    app.cleanup_ctx.append(shared_state)
    app.cleanup_ctx.append(_observer_lifecycle)
    app.on_shutdown.append(_observer_stopping)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses", responses_websocket)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    install_observe_routes(app)
    if config.management.enabled:
        from proxy.management import install_management

        install_management(app, config, env)
    return app


async def _apply_published(app: web.Application, change: JSONObject) -> None:
    """A change another instance's management API made (a shared `[state]`): the config
    writer is imported when the first one arrives."""
    from proxy.management import apply_published

    await apply_published(app, change)


def _public(state: JSONObject) -> JSONObject:
    """What any peer may see of the state backend: which, and whether Redis answers."""
    return {key: state[key] for key in ("backend", "redis") if key in state}


def _worker(request: web.Request) -> JSONObject:
    """Under `serve --workers N`, `pid` is the supervisor's (what `stop` and `reload` signal:
    it passes the signal to every worker), and `worker` says which worker answered."""
    index = os.environ.get(WORKER_ENV)
    if not index:
        return {}
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return {
        "pid": os.getppid(),
        "worker": {"index": int(index), "pid": os.getpid()},
        "port": sockname[1] if sockname else 0,
    }


async def _observer_stopping(app: web.Application) -> None:
    """aiohttp runs this before it drains the requests in flight (up to `serve`'s grace
    period); the cleanup context runs after."""
    app[OBSERVER].stopping()


async def _observer_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The journal's writer thread runs while the app serves; at shutdown the records waiting
    for the observer's timer go out, what is queued is written (off the event loop) and queued
    spans are flushed."""
    observer = app[OBSERVER]
    if observer.journal is not None:
        observer.journal.start()
    try:
        yield
    finally:
        observer.flush()
        if observer.journal is not None:
            await asyncio.to_thread(observer.journal.close)
        if observer.tracer is not None:
            await asyncio.to_thread(observer.tracer.close)


async def _responsive_loop(app: web.Application) -> None:
    """Large bodies are parsed in worker threads (`limits.off_loop`); with CPython's default
    5 ms GIL switch interval each busy worker delays every step of the loop by up to 5 ms,
    which made small requests' median 267 ms while four 20 MiB bodies were handled (36 ms at
    0.5 ms; `tests/bench/bench_large_bodies.py`). The setting is per process: the daemon's."""
    sys.setswitchinterval(SWITCH_INTERVAL)


async def _nosniff(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("x-content-type-options", "nosniff")
