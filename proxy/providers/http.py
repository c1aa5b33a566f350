"""The HTTP half of every transport: send, classify failures, read SSE under time limits.

Every call down into the outgoing client goes through `boundary.upstream_errors`, the one place
its exceptions become llmproxy's.

One pooled client (`proxy.security.outgoing`) serves all providers; nothing here is created per
request except the request itself. Every exit path releases the upstream response, so a cancelled
client request closes the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import orjson
from yarl import URL

from proxy.classify import classify
from proxy.errors import (
    StreamCutError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamStatusError,
)
from proxy.providers.base import Dialect, EventBatch, UpstreamRequest, fault_error
from proxy.providers.boundary import upstream_errors
from proxy.security.http1 import Client
from proxy.security.http1_wire import Response
from proxy.security.outgoing import AnswerTooLarge, read_capped
from proxy.sse import SSEDecoder
from proxy.types import (
    ErrorClass,
    Finish,
    MessageStart,
    UpstreamFault,
    UpstreamReply,
    UsageUpdate,
)

log = logging.getLogger("llmproxy.upstream")

CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
MIN_SECRET = 8
"""Shorter values are not searched for: they would mask ordinary words."""
ERROR_BODY_BYTES = 1024 * 1024
"""An error body longer than this is not read: its first megabyte would say all it has to."""


class HttpTransport:
    """Sends UpstreamRequests of one dialect over the shared client."""

    def __init__(self, client: Client, dialect: Dialect, max_answer_bytes: int) -> None:
        self._client = client
        self._dialect = dialect
        self._max_answer = max_answer_bytes

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        """A non-streaming call; returns the provider's JSON body. The whole answer must arrive
        within `response_headers` (a non-streaming provider sends its headers with it)."""
        limit, stage = _within(request, request.provider.timeouts.response_headers, "response")
        with upstream_errors(request.target, stage):
            async with asyncio.timeout(limit):
                response = await self._send(request, None)
                try:
                    raw = await read_capped(response, self._max_answer)
                except AnswerTooLarge as exc:  # ours, not a transport failure
                    raise UpstreamStatusError(
                        f"the answer is larger than llmproxy reads ({self._max_answer} bytes, "
                        "[security.limits] max_answer_bytes)",
                        target=request.target,
                        status=response.status,
                        error_class=ErrorClass.BAD_RESPONSE,
                    ) from exc
                finally:
                    response.release()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStatusError(
                "upstream sent a body that is not JSON",
                target=request.target,
                status=response.status,
                error_class=ErrorClass.BAD_RESPONSE,
            ) from exc
        if not isinstance(payload, dict):
            raise UpstreamStatusError(
                "upstream sent JSON that is not an object",
                target=request.target,
                status=response.status,
                error_class=ErrorClass.BAD_RESPONSE,
            )
        problem = self._dialect.body_error(payload)
        if problem is not None:
            # The in-band error a stream would carry, classified alike (`fault_error`): the
            # 200 says nothing, the body's code or wording decides.
            fault = payload if payload.get("error") else {"error": {"message": problem}}
            redacted = orjson.loads(self._redacted(request, orjson.dumps(fault)))
            raise fault_error(UpstreamFault(None, redacted), request.target, inside="the answer")
        return UpstreamReply(payload)

    def _credentials(self, request: UpstreamRequest) -> list[bytes]:
        """The secrets this request carried: what an upstream must never echo to a client."""
        sent = self._dialect.headers(request)
        found = []
        for name, value in sent.items():
            lower = name.lower()
            if lower in CREDENTIAL_HEADERS or name in request.provider.headers:
                found.append(value.removeprefix("Bearer ").removeprefix("bearer ").strip())
        if request.provider.api_key:
            found.append(request.provider.api_key)
        return [s.encode() for s in found if len(s) >= MIN_SECRET]

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[EventBatch]:
        """A streaming call: neutral events until Finish, or an UpstreamError. Events come in
        batches, one per read of the upstream's body, so that what one read delivered reaches
        the client in one write; the first content event ends a batch of its own (the commit
        point, and the client's first token, need not wait for the rest of its read).

        Raises StreamCutError when the body ends (or the connection drops, or stalls) before the
        provider's finish reason: a truncated answer is never reported as complete. After the
        finish reason, a drop or a stall ends a complete answer. An unparseable chunk is logged
        and skipped.
        """
        limits = request.provider.timeouts
        first_token = limits.first_token_for(request.input_tokens)
        started = time.monotonic()
        response = await self._send(request, min(limits.response_headers, first_token))
        # Until the first content, the request's deadline bounds each wait too.
        try:
            sse = SSEDecoder()
            decoder = self._dialect.new_decoder()
            broken: StreamCutError | None = None
            finished = False
            got_event = False
            got_content = False
            while True:
                stage = "stream idle gap" if got_event else "first token"
                try:
                    with upstream_errors(request.target, stage):
                        # What already arrived needs no timer: a timeout scope costs a timer
                        # handle and a task lookup, and bursts often leave data waiting.
                        chunk = response.read_nowait()
                        if not chunk and not response.is_eof():
                            budget = (
                                limits.stream_idle
                                if got_event
                                else max(0.05, first_token - (time.monotonic() - started))
                            )
                            if not got_content:
                                budget, stage = _within(request, budget, stage)
                            async with asyncio.timeout(budget):
                                chunk = await response.readany()
                except UpstreamError as error:
                    if not got_event:
                        raise
                    # Events arrived: the answer is cut (or, after its finish, complete).
                    broken = StreamCutError(f"stream broke: {error.message}", target=request.target)
                    chunk = b""
                events = sse.feed(chunk) if chunk else sse.close()
                batch: EventBatch = []
                for sse_event in events:
                    if sse_event.data == "[DONE]":
                        finished = True
                        continue
                    try:
                        payload = orjson.loads(sse_event.data)
                    except orjson.JSONDecodeError:
                        log.warning("%s: skipped an unparseable stream chunk", request.target)
                        continue
                    if not isinstance(payload, dict):
                        log.warning("%s: skipped a non-object stream chunk", request.target)
                        continue
                    for event in decoder.feed(sse_event.event, payload):
                        if isinstance(event, UpstreamFault):
                            if finished:
                                break  # after the finish: the answer is complete
                            if batch:  # what came before the error still counts
                                yield batch
                            raise fault_error(event, request.target)
                        got_event = True
                        batch.append(event)
                        if isinstance(event, Finish):
                            finished = True
                        elif not got_content and not isinstance(event, MessageStart | UsageUpdate):
                            # The first content leaves before the rest of its read is decoded:
                            # a read can hold a whole answer, and the client's time to first
                            # token would be the time to decode it all.
                            got_content = True
                            yield batch
                            batch = []
                if batch:
                    yield batch
                if not chunk:
                    break
            batch = decoder.close()
            if any(isinstance(event, Finish) for event in batch):
                finished = True
            if batch:
                yield batch
            if not finished:
                raise broken or StreamCutError(
                    "stream ended before the provider's finish reason", target=request.target
                )
            if broken is not None:
                # The finish reason had arrived: what broke afterwards (the `[DONE]`, the end of
                # the body) cost the client nothing, so the answer is complete.
                log.info(
                    "%s: %s after the finish reason; answer complete",
                    request.target,
                    broken.message,
                )
        finally:
            if finished and broken is None:
                response.release()
            else:  # abandoned or broken: drop the connection so the upstream stops generating
                response.close()

    async def _send(self, request: UpstreamRequest, headers_timeout: float | None) -> Response:
        """POST the request; an error status is read, classified and raised. `headers_timeout`
        None means the caller bounds the wait."""
        provider = request.provider
        limits = provider.timeouts
        payload = orjson.dumps(request.body)
        if provider.unsendable:  # refused before anything is sent
            raise UpstreamRefusedError(
                f"the provider's key or a header {provider.unsendable}; fix the config",
                target=request.target,
                error_class=ErrorClass.AUTH,
            )
        headers = self._dialect.headers(request)
        sent = self._client.request(
            "POST",
            URL(self._dialect.url(provider)),
            headers,
            payload,
            connect_timeout=limits.connect,
        )
        stage = "response headers"
        if headers_timeout is not None:
            headers_timeout, stage = _within(request, headers_timeout, stage)
        with upstream_errors(request.target, stage):
            if headers_timeout is None:  # the caller's timer bounds it: no second one
                response = await sent
            else:
                async with asyncio.timeout(headers_timeout):
                    response = await sent
        if response.status >= 300:
            try:
                with upstream_errors(request.target, "error body"):
                    async with asyncio.timeout(limits.stream_idle):
                        raw = await read_capped(response, ERROR_BODY_BYTES)
            except UpstreamError:
                raw = b""  # the status alone is classified
            finally:
                response.release()
            raise self._status_error(request, response.status, raw, response.headers)
        return response

    def _redacted(self, request: UpstreamRequest, raw: bytes) -> bytes:
        for secret in self._credentials(request):  # e.g. "Incorrect API key provided: sk-..."
            raw = raw.replace(secret, b"[REDACTED]")
        return raw

    def _status_error(
        self, request: UpstreamRequest, status: int, raw: bytes, headers: object
    ) -> UpstreamError:
        raw = self._redacted(request, raw)
        header_map = {k.lower(): v for k, v in dict(headers).items()} if headers else {}  # type: ignore[call-overload]
        found = classify(status, raw, header_map)
        return UpstreamStatusError(
            found.message,
            target=request.target,
            status=status,
            error_class=found.error_class,
            body=found.body,
            headers=header_map,
            retry_after=found.retry_after,
        )


def _within(request: UpstreamRequest, seconds: float, stage: str) -> tuple[float, str]:
    """`seconds` cut to what is left of the request's deadline, and the stage a timeout then
    names (the deadline's, when it is the nearer limit)."""
    left = request.deadline - time.monotonic()
    if left < seconds:
        return max(0.0, left), "request deadline"
    return seconds, stage
