"""The daemon: `build_app(config)` wires routes, middleware and the one pooled client session."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from proxy.appkeys import CONFIG, HEALTH, RUNNER, SESSION
from proxy.client_dialects import ANTHROPIC, OPENAI, ClientDialect
from proxy.config import GLOB_CHARS, Config
from proxy.errors import AuthenticationError, ClientRequestError
from proxy.fallback import FallbackRunner
from proxy.health import HealthRegistry
from proxy.handlers import chat_completions, count_tokens, messages
from proxy.providers.registry import Upstreams

log = logging.getLogger("llmproxy.server")

MAX_BODY_BYTES = 32 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dialect_for(request: web.Request) -> ClientDialect:
    return ANTHROPIC if request.path.startswith("/v1/messages") else OPENAI


def _error(dialect: ClientDialect, status: int, message: str, param: str | None = None
           ) -> web.Response:
    body = dialect.error_body(status, message, param=param)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost catch-all: every failure leaves in the client's dialect, never a trace."""
    dialect = dialect_for(request)
    try:
        return await handler(request)
    except ClientRequestError as exc:
        return _error(dialect, exc.status, exc.message, exc.param)
    except web.HTTPRequestEntityTooLarge:
        return _error(dialect, 413, f"request body exceeds {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(dialect, exc.status, exc.reason)
    except ConnectionResetError:
        raise
    except Exception:  # the one catch-all: log it, answer in the client's dialect
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(dialect, 500, "internal error in llmproxy")


def auth_middleware(api_keys: tuple[str, ...]) -> Callable[[web.Request, Handler],
                                                           Awaitable[web.StreamResponse]]:
    """Client keys from `x-api-key` or `Authorization: Bearer`, compared in constant time
    against every configured key (no early exit that tells which one or how much matched)."""
    expected = tuple(key.encode() for key in api_keys)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not expected or not request.path.startswith("/v1/"):
            return await handler(request)
        presented = request.headers.get("x-api-key", "")
        if not presented:
            authorization = request.headers.get("authorization", "")
            scheme, _, token = authorization.partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        given = presented.encode()
        matched = 0
        for key in expected:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise AuthenticationError()
        return await handler(request)

    return middleware


async def models(request: web.Request) -> web.Response:
    """Ids a client can put in `model`: every `provider,model` and every mapping alias, in a
    shape both SDKs accept (OpenAI's list and Anthropic's page share `data`)."""
    config = request.app[CONFIG]
    created = int(time.time())
    ids: list[tuple[str, str]] = []
    for provider in config.providers:
        ids.extend((f"{provider.name},{m}", provider.name) for m in provider.models
                   if not GLOB_CHARS.intersection(m))
    for mapping in config.router.model_mappings:
        if not GLOB_CHARS.intersection(mapping.pattern):
            ids.append((mapping.pattern, "llmproxy"))
    data = [
        {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": owner,
            "type": "model",
            "display_name": model_id,
            "created_at": "1970-01-01T00:00:00Z",
        }
        for model_id, owner in ids
    ]
    body = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def health(request: web.Request) -> web.Response:
    """Liveness plus the live health of every target that has seen traffic."""
    config = request.app[CONFIG]
    targets = [
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
            "tokens_per_second": status.tokens_per_second,
        }
        for status in request.app[HEALTH].snapshot()
    ]
    body = {"status": "ok", "providers": [p.name for p in config.providers], "targets": targets}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def build_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[errors_middleware, auth_middleware(config.proxy.api_keys)],
    )
    app[CONFIG] = config
    app[HEALTH] = HealthRegistry(config.proxy.health)

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                        trust_env=False)
        app[SESSION] = session
        app[RUNNER] = FallbackRunner(config, Upstreams(session), app[HEALTH])
        yield
        await session.close()

    app.cleanup_ctx.append(upstream_session)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    return app
