"""HTTP handlers: parse, route, hand the job to the fallback runner, render. Nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from aiohttp import web

from proxy.appkeys import HEALTH, LIVE
from proxy.client_dialects import ANTHROPIC, OPENAI, ClientDialect
from proxy.errors import ChainExhaustedError, ClientRequestError, RoutingError, UpstreamError
from proxy.exchange import upstream_error_for_client
from proxy.fallback import ClientFacingError, Job, OpenedStream
from proxy.observe.cost import cost_value
from proxy.observe.observer import trace_of
from proxy.observe.record import Trace
from proxy.observe.usage import usage_of_answer
from proxy.routing import decide
from proxy.security.limits import BODY
from proxy.sse import encode_comment
from proxy.summary import summarize
from proxy.tokens import estimate_request_tokens
from proxy.types import Attempt, JSONObject, Target, WireFormat, attempts_header

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
    return dialect.validate(body, generation=generation)


_UNPARSED = object()


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON straight from orjson's bytes (web.json_response would round-trip through str)."""
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def llmproxy_headers(
    target: Target | None, attempts: list[Attempt] | tuple[Attempt, ...]
) -> dict[str, str]:
    headers = {"x-llmproxy-attempts": attempts_header(attempts)}
    if target is not None:
        headers["x-llmproxy-provider"] = target.provider
        headers["x-llmproxy-model"] = target.model
    return headers


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await generate(request, OPENAI)


async def messages(request: web.Request) -> web.StreamResponse:
    return await generate(request, ANTHROPIC)


async def count_tokens(request: web.Request) -> web.Response:
    body = await read_json(request, ANTHROPIC, generation=False)
    return json_response({"input_tokens": estimate_request_tokens(body, ANTHROPIC.format)})


FinishBody = Callable[[JSONObject, JSONObject], JSONObject]


async def generate(
    request: web.Request, dialect: ClientDialect, *, finish: FinishBody | None = None
) -> web.StreamResponse:
    """Serve one generation request. `finish(request_body, answer)` may adjust a non-streaming
    answer for what only the endpoint knows (e.g. the Responses API's namespaced tools)."""
    body = await read_json(request, dialect)
    running = request.app[LIVE].current  # one snapshot for the whole request
    config = running.config
    summary = summarize(body, dialect.format)
    try:
        decision = decide(summary, config, request.app[HEALTH])
    except RoutingError as exc:
        raise ClientRequestError(str(exc), param="model") from exc
    forward = {k: v for k in FORWARDED_HEADERS if (v := request.headers.get(k))}
    job = Job(dialect.format, body, summary, decision, bool(body.get("stream")), forward)
    log.debug("route %s: %s", decision.scenario.value, decision.reason)
    trace = trace_of(request)
    trace.routed(summary.model, job.stream, decision, config.capabilities)
    runner = running.runner
    try:
        if job.stream:
            opened = await runner.open_stream(job)
            return await _stream(request, dialect, job, opened, trace)
        done = await runner.complete(job)
    except ClientFacingError as exc:
        trace.ended(exc.error.target, exc.attempts, error=exc.error.error_class.value)
        return _upstream_error_response(dialect, exc.error, exc.pair.provider, exc.attempts)
    except ChainExhaustedError as exc:
        trace.ended(None, exc.attempts, error=exc.error_class.value)
        return _exhausted_response(dialect, exc)
    answer = done.body if finish is None else finish(body, done.body)
    trace.ended(done.target, done.attempts, usage_of_answer(answer, dialect.format))
    headers = llmproxy_headers(done.target, done.attempts)
    headers[COST_HEADER] = cost_value(trace.cost())
    return json_response(answer, headers=headers)


async def _stream(
    request: web.Request, dialect: ClientDialect, job: Job, opened: OpenedStream, trace: Trace
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **llmproxy_headers(opened.target, opened.attempts),
        }
    )
    encoder = dialect.stream_encoder(opened.target.model, job.body, job.summary.token_estimate)
    try:
        await response.prepare(request)  # the commit point: from here on, errors go in-stream
        async for event in opened.events:
            trace.saw(event)
            await response.write(encoder.encode(event))
        trace.ended(opened.target, opened.attempts)
        await response.write(_attempts_trailer(opened, trace) + encoder.finish())
    except (UpstreamError, ChainExhaustedError) as exc:
        message = exc.message if isinstance(exc, UpstreamError) else str(exc)
        log.warning("stream for %s ended with an error: %s", opened.target, message)
        trace.ended(opened.target, opened.attempts, error=exc.error_class.value)
        await response.write(
            _attempts_trailer(opened, trace)
            + dialect.stream_error(encoder, 502, message, exc.error_class)
        )
    finally:
        trace.ended(opened.target, opened.attempts)  # also when the client went away
        await opened.aclose()
    await response.write_eof()
    return response


def _attempts_trailer(opened: OpenedStream, trace: Trace) -> bytes:
    """The headers went out at the commit point; attempts made after it (a mid-stream failover)
    and the cost are reported in SSE comments, which clients ignore and `llmproxy` tools read."""
    return encode_comment(
        f"x-llmproxy-attempts {attempts_header(opened.attempts)}"
    ) + encode_comment(f"{COST_HEADER} {cost_value(trace.cost())}")


def _upstream_error_response(
    dialect: ClientDialect,
    error: UpstreamError,
    provider_format: WireFormat,
    attempts: tuple[Attempt, ...],
) -> web.Response:
    status = error.status or 502
    body = upstream_error_for_client(
        dialect.format, provider_format, status, error.body, error.message
    )
    return json_response(body, status=status, headers=llmproxy_headers(error.target, attempts))


def _exhausted_response(dialect: ClientDialect, exc: ChainExhaustedError) -> web.Response:
    headers = llmproxy_headers(None, exc.attempts)
    if exc.last is not None and exc.last.retry_after is not None and exc.status == 429:
        headers["retry-after"] = str(max(1, round(exc.last.retry_after)))
    body = dialect.error_body(
        exc.status,
        str(exc),
        code=exc.error_class.value,
        extra={"attempts": [a.to_json() for a in exc.attempts]},
    )
    return json_response(body, status=exc.status, headers=headers)
