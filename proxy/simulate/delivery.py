"""Sending a planned reply while applying the request's fault; shared by both dialects.

A dialect hands over its reply as a list of `Frame`s (already-encoded SSE bytes, each tagged with
its role) or as one JSON payload; this module decides when and whether each byte goes out.

Non-streaming requests get the nearest JSON equivalent of a stream fault: `CutAfter` sends the
headers and half the body and closes; `MidStreamError` becomes an error status; `MalformedChunk`
a 200 with a truncated body; `StallAfter` and `SlowFirstToken` delay the whole body; `NoDone`,
`DropAfterFinish` and `ErrorAfterFinish` change nothing; `EndWithoutFinish` sends half the body
like `CutAfter`.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Sequence
from enum import StrEnum

import orjson
from aiohttp import web

from proxy.frozen import frozen
from proxy.simulate.faults import (
    CutAfter,
    DropAfterFinish,
    EndWithoutFinish,
    ErrorAfterFinish,
    Fault,
    Hang,
    MalformedChunk,
    MidStreamError,
    NoDone,
    Reset,
    SlowFirstByte,
    SlowFirstToken,
    StallAfter,
    Status,
)
from proxy.simulate.records import CLIENT_DISCONNECTED, SERVER_STOPPED, Exchange
from proxy.simulate.wire import SSE_CONTENT_TYPE, default_error_body, sse_data, sse_event
from proxy.types import JSONObject, ProviderFormat


class FrameKind(StrEnum):
    META = "meta"  # structure: role chunk, message_start, block start/stop, ping
    CONTENT = "content"  # one chunk of text, reasoning or tool arguments: what faults count
    FINAL = "final"  # finish reason, usage, message_delta
    DONE = "done"  # `[DONE]` / `message_stop`


@frozen
class Frame:
    data: bytes
    kind: FrameKind


@frozen
class Timing:
    """Simulated latency: before the first content chunk, and between content chunks."""

    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    burst: bool = False
    """A stream without a fault goes out in one write (after `first_token_delay`)."""


class _Stopping(Exception):
    """The simulator is shutting down while this handler waits."""


def _retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def error_response(fmt: ProviderFormat, status: Status) -> web.Response:
    headers = dict(status.headers)
    if status.retry_after is not None:
        headers["retry-after"] = _retry_after_value(status.retry_after)
    if status.retry_after_ms is not None:
        headers["retry-after-ms"] = str(status.retry_after_ms)
    if isinstance(status.body, str):
        return web.Response(status=status.code, text=status.body, headers=headers)
    body = status.body if status.body is not None else default_error_body(fmt, status.code)
    return web.Response(
        status=status.code,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def stream_error_frame(fmt: ProviderFormat, fault: MidStreamError) -> bytes:
    body = fault.body if fault.body is not None else default_error_body(fmt, fault.status)
    if fmt is ProviderFormat.ANTHROPIC:
        return sse_event("error", body)
    return sse_data(body)


def malformed_frame(fmt: ProviderFormat) -> bytes:
    if fmt is ProviderFormat.ANTHROPIC:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": \n\n'
    return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'


class Delivery:
    """Applies one fault to one response. Every public coroutine returns the response aiohttp
    should finish; after a deliberate drop that response can no longer be written, which aiohttp
    treats as a quiet premature disconnection."""

    def __init__(
        self, ex: Exchange, fmt: ProviderFormat, stop: asyncio.Event, timing: Timing
    ) -> None:
        self.ex = ex
        self.fmt = fmt
        self._stop = stop
        self._timing = timing

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 and not self._stop.is_set():
            return
        if math.isinf(seconds):
            await self._stop.wait()
        else:
            try:
                await asyncio.wait_for(self._stop.wait(), seconds)
            except TimeoutError:
                return
        raise _Stopping

    def _drop(self, response: web.StreamResponse, *, reset: bool) -> web.StreamResponse:
        transport = self.ex.request.transport
        if transport is not None:
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger 0 turns close into a TCP RST: the client sees "connection reset".
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()  # flushes what was written, then FIN mid-body
        return response

    def _stopped(self, response: web.StreamResponse) -> web.StreamResponse:
        self.ex.outcome = SERVER_STOPPED
        return self._drop(response, reset=True)

    def reject(self, status: Status) -> web.Response:
        """The simulator itself refuses the request (auth, validation): not a fault."""
        self.ex.status = status.code
        self.ex.outcome = "rejected"
        return error_response(self.fmt, status)

    async def before_headers(self, fault: Fault | None) -> web.StreamResponse | None:
        """Faults that act before the response starts; None means carry on."""
        try:
            if isinstance(fault, Status):
                self.ex.status = fault.code
                self.ex.outcome = fault.label
                return error_response(self.fmt, fault)
            if isinstance(fault, Reset):
                self.ex.outcome = fault.label
                return self._drop(web.Response(), reset=True)
            if isinstance(fault, Hang):
                await self._pause(math.inf)
            if isinstance(fault, SlowFirstByte):
                await self._pause(fault.seconds)
        except _Stopping:
            return self._stopped(web.Response())
        return None

    async def json(
        self, payload: JSONObject, fault: Fault | None, content_chunks: int
    ) -> web.StreamResponse:
        timing = self._timing
        try:
            delay = timing.first_token_delay + timing.chunk_delay * max(0, content_chunks - 1)
            if isinstance(fault, SlowFirstToken | StallAfter):
                delay += fault.seconds
            await self._pause(delay)
        except _Stopping:
            return self._stopped(web.Response())
        if isinstance(fault, MidStreamError):
            self.ex.outcome = fault.label
            return self._finish_error(fault)
        body = orjson.dumps(payload)
        if fault is not None:
            self.ex.outcome = fault.label
        if isinstance(fault, CutAfter | MalformedChunk | EndWithoutFinish):
            half = body[: max(1, len(body) // 2)]
            if isinstance(fault, MalformedChunk):
                self.ex.status = 200
                return web.Response(body=half, content_type="application/json")
            response = web.StreamResponse(status=200)
            response.content_type = "application/json"
            response.content_length = len(body)
            await response.prepare(self.ex.request)
            self.ex.status = 200
            await response.write(half)
            return self._drop(response, reset=False)
        self.ex.status = 200
        self.ex.chunks_sent = content_chunks
        return web.Response(body=body, content_type="application/json")

    def _finish_error(self, fault: MidStreamError) -> web.Response:
        body = fault.body if fault.body is not None else default_error_body(self.fmt, fault.status)
        self.ex.status = fault.status
        return web.Response(
            status=fault.status, body=orjson.dumps(body), content_type="application/json"
        )

    async def stream(self, frames: Sequence[Frame], fault: Fault | None) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.headers["content-type"] = SSE_CONTENT_TYPE
        response.headers["cache-control"] = "no-cache"
        if fault is not None:
            self.ex.outcome = fault.label
        await response.prepare(self.ex.request)
        self.ex.status = 200
        try:
            return await self._write_frames(response, frames, fault)
        except _Stopping:
            return self._stopped(response)
        except ConnectionError:
            # A write found the client gone; answering "done" lets aiohttp drop it quietly.
            self.ex.outcome = CLIENT_DISCONNECTED
            return response

    async def _write_frames(
        self, response: web.StreamResponse, frames: Sequence[Frame], fault: Fault | None
    ) -> web.StreamResponse:
        if isinstance(fault, SlowFirstToken):
            await self._pause(fault.seconds)
        if self._timing.burst and fault is None:
            await self._pause(self._timing.first_token_delay)
            self.ex.chunks_sent = sum(f.kind is FrameKind.CONTENT for f in frames)
            await response.write_eof(b"".join(frame.data for frame in frames))
            return response
        sent = 0
        at_count = _count_trigger(fault, sum(f.kind is FrameKind.CONTENT for f in frames))
        triggered = False
        for frame in frames:
            due = frame.kind in (FrameKind.CONTENT, FrameKind.FINAL, FrameKind.DONE)
            if due and not triggered and at_count is not None and sent >= at_count:
                # The fault's moment: `at_count` content chunks are out, the next one is not.
                triggered = True
                stop = await self._trigger(response, fault)
                if stop is not None:
                    return stop
            if frame.kind is FrameKind.DONE and isinstance(fault, NoDone):
                continue
            if frame.kind is FrameKind.DONE and isinstance(fault, DropAfterFinish):
                return self._drop(response, reset=False)
            if frame.kind is FrameKind.DONE and isinstance(fault, ErrorAfterFinish):
                await response.write(stream_error_frame(self.fmt, MidStreamError(0, fault.status)))
                await response.write_eof()
                return response
            if frame.kind is FrameKind.CONTENT:
                await self._pause(
                    self._timing.first_token_delay if sent == 0 else self._timing.chunk_delay
                )
            await response.write(frame.data)
            if frame.kind is FrameKind.CONTENT:
                sent += 1
                self.ex.chunks_sent = sent
        await response.write_eof()
        return response

    async def _trigger(
        self, response: web.StreamResponse, fault: Fault | None
    ) -> web.StreamResponse | None:
        if isinstance(fault, CutAfter):
            return self._drop(response, reset=False)
        if isinstance(fault, EndWithoutFinish):
            await response.write_eof()
            return response
        if isinstance(fault, StallAfter):
            await self._pause(fault.seconds)
        elif isinstance(fault, MidStreamError):
            await response.write(stream_error_frame(self.fmt, fault))
            await response.write_eof()
            return response
        elif isinstance(fault, MalformedChunk):
            await response.write(malformed_frame(self.fmt))
        return None


def _count_trigger(fault: Fault | None, content_chunks: int) -> int | None:
    if isinstance(fault, MidStreamError) and fault.fraction is not None:
        return min(content_chunks - 1, max(0, math.floor(fault.fraction * content_chunks)))
    if isinstance(fault, CutAfter | StallAfter | MidStreamError | EndWithoutFinish):
        return max(0, fault.chunks)
    if isinstance(fault, MalformedChunk):
        return max(0, fault.after)
    return None
