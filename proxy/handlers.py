"""HTTP handlers: parse, route, hand the job to the fallback runner, render. Nothing else."""

from __future__ import annotations

import logging
import math
from functools import partial

import orjson
from aiohttp import web

from proxy.affinity import AFFINITY_HEADER
from proxy.appkeys import AFFINITY, HEALTH, LIVE, OPERATOR, TOKENS
from proxy.client_dialects import ANTHROPIC, OPENAI, ClientDialect
from proxy.conversation import conversation_of
from proxy.errors import (
    ChainExhaustedError,
    ClientFacingError,
    ClientRequestError,
    RoutingError,
    UpstreamError,
)
from proxy.fallback import Job
from proxy.health import HealthRegistry
from proxy.midstream import StreamLife
from proxy.observe.cost import cost_value
from proxy.observe.observer import trace_of
from proxy.observe.record import Trace
from proxy.routing import decide
from proxy.security.limits import BODY, off_loop
from proxy.security.ratelimit import TOKEN_COUNT
from proxy.sse import encode_comment
from proxy.summary import summarize
from proxy.types import (
    ATTEMPT_DETAILS,
    Attempt,
    Decision,
    ErrorClass,
    JSONObject,
    ProviderFormat,
    Target,
    attempt_details,
    attempts_header,
)

log = logging.getLogger("llmproxy.server")

COST_HEADER = "x-llmproxy-cost"
"""USD, from the served model's prices (`unknown` when they are not known)."""
# Client headers a same-format Anthropic provider must see; nothing else is forwarded.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


async def read_json(
    request: web.Request, dialect: ClientDialect, *, generation: bool = True
) -> JSONObject:
    """The validated body. The limits middleware has normally parsed it already (`BODY`)."""
    body = request.get(BODY, _UNPARSED)
    if body is _UNPARSED:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise ClientRequestError(f"request body is not valid JSON: {exc}") from exc
    return await off_loop(request, partial(dialect.validate, generation=generation), body)


_UNPARSED = object()


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON straight from orjson's bytes (web.json_response would round-trip through str)."""
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def llmproxy_headers(
    target: Target | None,
    attempts: list[Attempt] | tuple[Attempt, ...],
    decision: Decision | None = None,
    operator: bool = False,
) -> dict[str, str]:
    headers = {"x-llmproxy-attempts": attempts_header(attempts)}
    if operator:
        headers[ATTEMPT_DETAILS] = attempt_details(attempts)
    if target is not None:
        headers["x-llmproxy-provider"] = target.provider
        headers["x-llmproxy-model"] = target.model
    if decision is not None and decision.affinity is not None:
        # Model names come from the config and may be non-ASCII; header values must be latin-1.
        headers[AFFINITY_HEADER] = decision.affinity.encode("ascii", "replace").decode()
    return headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await generate(request, OPENAI)


async def messages(request: web.Request) -> web.StreamResponse:
    return await generate(request, ANTHROPIC)


async def count_tokens(request: web.Request) -> web.Response:
    body = await read_json(request, ANTHROPIC, generation=False)
    tokens = await off_loop(request, request.app[TOKENS].request_tokens, body, ANTHROPIC.format)
    return json_response({"input_tokens": tokens})


async def generate(request: web.Request, dialect: ClientDialect) -> web.StreamResponse:
    """Serve one generation request."""
    body = await read_json(request, dialect)
    app = request.app  # a property that looks the app up through the match info
    running = app[LIVE].current  # one snapshot for the whole request
    config = running.config
    counted = request.get(TOKEN_COUNT)
    estimate = counted.of(body, dialect.format) if counted is not None else None
    estimator = app[TOKENS].request_tokens
    summary = await off_loop(request, summarize, body, dialect.format, estimate, estimator)
    try:
        decision = decide(summary, config, app[HEALTH])
    except RoutingError as exc:
        raise ClientRequestError(str(exc), param="model") from exc
    client_headers = request.headers
    conversation = conversation_of(body, client_headers, dialect.format)
    affinity = app[AFFINITY]
    decision = affinity.route(decision, conversation, config.affinity, app[HEALTH])
    forward = {k: v for k in FORWARDED_HEADERS if (v := client_headers.get(k))}
    cache_key = conversation.key if conversation is not None else None
    job = Job(dialect.format, body, summary, decision, bool(body.get("stream")), forward, cache_key)
    log.debug("route %s: %s; affinity: %s", decision.scenario, decision.reason, decision.affinity)
    trace = trace_of(request)
    trace.routed(summary.model, job.stream, decision, config.capabilities)
    runner = running.runner
    try:
        if job.stream:
            life = StreamLife(runner, job)
            await life.open()
            response = await _stream(request, dialect, job, life)
            if life.report().finished:
                affinity.served(conversation, life.served, config.affinity, decision.route)
            return response
        done = await runner.complete(job)
    except ClientFacingError as exc:
        trace.ended(exc.error.target, exc.attempts, error=exc.error.error_class.value)
        return await _sent(
            request, _upstream_error_response(dialect, exc.error, exc.provider, exc.attempts)
        )
    except ChainExhaustedError as exc:
        trace.ended(None, exc.attempts, error=exc.error_class.value)
        return await _sent(request, _exhausted_response(dialect, exc, app[HEALTH]))
    affinity.served(conversation, done.target, config.affinity, decision.route)
    answer = done.body
    trace.ended(done.target, done.attempts, done.usage)
    operator = app.get(OPERATOR, False)
    headers = llmproxy_headers(done.target, done.attempts, decision, operator)
    headers[COST_HEADER] = cost_value(trace.cost())
    return await _sent(request, json_response(answer, headers=headers))


async def _sent(request: web.Request, response: web.Response) -> web.Response:
    """`response`, already written: what the outer layers do once the handler returns (the
    request's record, log line, journal entry and metrics) then no longer delays the answer.
    aiohttp's own sending of a returned response skips one that was sent."""
    await response.prepare(request)
    await response.write_eof()
    return response


async def _stream(
    request: web.Request, dialect: ClientDialect, job: Job, life: StreamLife
) -> web.StreamResponse:
    """Write a committed stream. After `prepare()` nothing but SSE events is ever written: every
    failure, expected or not, ends the stream with the client dialect's own error event."""
    trace = trace_of(request)
    response = _EventStream(
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **llmproxy_headers(
                life.target, life.attempts(), job.decision, request.app.get(OPERATOR, False)
            ),
        }
    )
    encoder = dialect.stream_encoder(life.target.model, job.body, job.summary.token_estimate)
    try:
        await response.prepare(request)  # the commit point: from here on, errors go in-stream
        request[STREAM_STARTED] = True
        try:
            # One write per upstream read: a write is a syscall, and events come in bursts.
            async for batch in life.batches():
                chunks = []
                for event in batch:
                    trace.saw(event)
                    chunks.append(encoder.encode(event))
                await response.write(b"".join(chunks))
            ending = encoder.finish()
        except UpstreamError as exc:
            log.warning("stream for %s ended with an error: %s", life.target, exc.message)
            trace.failed(exc.error_class.value)
            ending = dialect.stream_error(encoder, 502, exc.message, exc.error_class)
        except ConnectionError:
            raise  # the client is gone: nobody left to tell
        except Exception:  # after the commit point only an error event may say what went wrong
            log.exception("stream for %s failed inside llmproxy", life.target)
            trace.failed(ErrorClass.SERVER_ERROR.value)
            ending = dialect.stream_error(encoder, 500, INTERNAL, ErrorClass.SERVER_ERROR)
        trace.stream_ended(life.report())
        ending = _trailer(life, request.app.get(OPERATOR, False), trace) + ending
        await response.write_eof(ending)  # with the body's end: one write
    finally:
        trace.stream_ended(life.report())  # also when the client went away
        await life.aclose()
    return response


class _EventStream(web.StreamResponse):
    """A committed stream whose headers leave with its first events: `StreamLife.open()`
    returns once the first content event is in hand, so they would follow within microseconds,
    and a write costs a syscall (on loopback, also the receiver's TCP work). aiohttp's own
    `Response` sets the same class attribute; `pyproject.toml` pins aiohttp's minor version and
    `tests/test_stream_writer.py` counts the writes."""

    _send_headers_immediately = False


INTERNAL = "internal error in llmproxy; the answer is incomplete"
# Set once a stream's headers are out: the errors middleware then only logs.
STREAM_STARTED = web.RequestKey("llmproxy_stream_started", bool)


def _trailer(life: StreamLife, operator: bool, trace: Trace) -> bytes:
    """The headers went out at the commit point, naming the committed try `streaming`; the
    final attempts (each try once, as it ended, mid-stream failovers included), the target that
    wrote the end of the answer and the cost are reported in SSE comments, which clients ignore
    and `llmproxy` tools read. Wire formats that name the model only once (Anthropic's
    `message_start`, the Responses API) keep naming the committed model; this names the one that
    finished."""
    served = life.served or life.target
    trailer = (
        encode_comment(f"x-llmproxy-attempts {attempts_header(life.attempts())}")
        + encode_comment(f"x-llmproxy-served-by {served}")
        + encode_comment(f"{COST_HEADER} {cost_value(trace.cost())}")
    )
    if operator:
        trailer += encode_comment(f"{ATTEMPT_DETAILS} {attempt_details(life.attempts())}")
    return trailer


def _upstream_error_response(
    dialect: ClientDialect,
    error: UpstreamError,
    provider_format: ProviderFormat,
    attempts: tuple[Attempt, ...],
) -> web.Response:
    status = error.status or 502
    body = dialect.upstream_error_body(status, error.body, error.message, provider_format)
    return json_response(body, status=status, headers=llmproxy_headers(error.target, attempts))


def _exhausted_response(
    dialect: ClientDialect, exc: ChainExhaustedError, health: HealthRegistry
) -> web.Response:
    headers = llmproxy_headers(None, exc.attempts)
    if exc.last is not None and exc.last.retry_after is not None and exc.status == 429:
        headers["retry-after"] = str(max(1, round(exc.last.retry_after)))
    elif exc.last is None and exc.attempts:  # nothing was sent: every target is cooling down
        waits = [w for a in exc.attempts if (w := health.recovers_in(a.target)) > 0]
        if waits:
            headers["retry-after"] = str(max(1, math.ceil(min(waits))))
    body = dialect.error_body(
        exc.status,
        str(exc),
        code=exc.error_class.value,
        extra={"attempts": [a.to_json() for a in exc.attempts]},
    )
    return json_response(body, status=exc.status, headers=headers)
