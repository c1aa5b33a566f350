"""llmproxy's own HTTP/1.1 client for upstream requests, on asyncio's protocol API.

aiohttp's `ClientSession` builds a request object, a writer, a response object, timer and
trace plumbing and a task per request: on a small request it was a quarter of the daemon's CPU.
This client does what an upstream call needs and nothing more: one socket write per request,
answers parsed by `httptools` (llhttp, uvicorn's parser), keep-alive connections per origin.
Only `proxy.security.outgoing` builds one.

What it guarantees:
- a new connection's host name resolves through the given resolver (`GuardedResolver`, which
  judges every address), its answer kept `DNS_TTL` seconds; IP literals are not resolved;
- every request's URL is judged before anything is sent (`judge`), IP literals too;
- a 3xx answer raises `RedirectRefused`: nothing is followed;
- no proxy, netrc or cookie, ever; a connect timeout (resolving, connecting, TLS), within
  which a host's addresses are tried `HAPPY_EYEBALLS_DELAY` apart; https is verified (the
  system's trust store) with SNI;
- gzip (of one member or several) and deflate bodies are decoded, never more than
  `HIGH_WATER` bytes ahead of the reader, so a small compressed body cannot inflate in memory
  beyond what the reader's own limit allows; chunked, length-delimited and close-delimited
  bodies (a close-delimited body ends cleanly only at the server's orderly close: a reset, or
  a connection llmproxy closed, fails it); an answer's header section is at most
  `MAX_HEAD_BYTES` and `MAX_HEADER_FIELDS` fields, and chunked trailers are ignored (and
  limited alike);
- a connection goes back to the pool only after its answer was read whole and the server
  allowed keep-alive; an answer closed early (cancelled, abandoned, failed) closes its
  connection at once; an idle connection is closed after `IDLE_SECONDS`;
- a request is never sent twice: a request body that may have reached the upstream (an LLM
  generation is not idempotent) is not resent by this client. A pooled connection is checked
  before reuse (closed, or readable while idle: the server's close or stray bytes arrived) and
  dropped if so; a server that closes a kept connection just as a request is written to it
  fails that request with `Disconnected`, for the caller's fallback to decide;
- a header name or value with a control character, or one that cannot be encoded, is
  refused before anything is sent; other values are sent as the bytes they were received as
  (a client's undecodable byte, held as a surrogate, goes out as that byte).

Errors, mapped to llmproxy's by `boundary.upstream_errors`:

    ClientFailure (ConnectionError)
      ConnectFailed        no connection: refused, unreachable, DNS, TLS
      Disconnected         the connection broke before the answer was whole
      BadResponse          not HTTP/1.1 this client reads, or a body it cannot decode
    HeaderRefused (ValueError)          a header that cannot be sent (`http1_wire`)
    RedirectRefused (DestinationRefused) and the guard's DestinationRefused
    TimeoutError                        the connect limit
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from typing import cast

import httptools
from aiohttp.abc import AbstractResolver
from yarl import URL

from proxy.security.http1_wire import HIGH_WATER, BodyDecoder, Response, request_head
from proxy.security.ssrf import DestinationRefused

DNS_TTL = 300.0
IDLE_SECONDS = 15.0
"""A pooled connection unused for longer is closed (servers drop theirs)."""
MAX_HEAD_BYTES = 64 * 1024
"""The most bytes read in a row outside an answer's body (its status line and header section,
a chunked body's trailers); more is a BadResponse. llhttp itself has no limit."""
MAX_HEADER_FIELDS = 128
HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before the next address of a host is tried while one is still connecting."""
LARGE_BODY = 256 * 1024
"""A request body this large is handed to the socket beside its head, not copied into one."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})


class ClientFailure(ConnectionError):
    """A failure below HTTP (one subclass per kind)."""


class ConnectFailed(ClientFailure):
    """No connection could be opened (refused, unreachable, DNS, TLS)."""

    def __init__(self, message: str, os_error: OSError) -> None:
        super().__init__(message)
        self.os_error = os_error


class Disconnected(ClientFailure):
    """The connection broke before the answer was whole."""


class BadResponse(ClientFailure):
    """The answer is not HTTP/1.1 this client reads, or its body cannot be decoded."""


class RedirectRefused(DestinationRefused):
    """The upstream answered with a redirect; llmproxy never follows one."""


Origin = tuple[str, str, int]
UrlJudge = Callable[[URL], "str | None"]
"""Why a URL may not be requested, or None."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one answer at a time."""

    def __init__(self, pool: Client, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._fd = -1
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._decoder: BodyDecoder | None = None
        self._head_bytes = 0
        self._head_fields = 0
        self._in_head = False
        self._head_only = False
        self._complete = False
        self._keep_alive = False
        self._no_body = False
        self._paused = False
        self._aborted = False
        self.lost = False
        self.idle_since = 0.0

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self._head is None and (self._response is None or self._complete):
            self._drop()  # nothing was asked: a connection that talks out of turn is not reused
            return
        self._head_bytes += len(data)  # since the last body bytes
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(BadResponse("the upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # what a callback below raised
            if not isinstance(refused, BadResponse):
                refused = BadResponse(f"an answer that is not HTTP/1.1: {exc}")
            self._broken(refused)
            return
        if self._head_bytes > MAX_HEAD_BYTES and not self._complete:
            self._broken(BadResponse(f"an answer head or trailers over {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool:
        self.lost = True  # not reusable from now on, though connection_lost comes later
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._pool.forget(self)
        head = self._head
        if head is not None and not head.done():
            head.set_exception(Disconnected("the upstream closed the connection, no answer"))
        response = self._response
        if response is not None and not self._complete:
            if exc is None and not self._aborted and self._close_delimited():
                self._finish_body()  # the server's orderly close is this body's end
            elif self._aborted:
                response._fail(Disconnected("llmproxy closed the connection mid-answer"))
            elif exc is not None:
                response._fail(Disconnected(f"the connection broke mid-answer: {exc}"))
            else:
                response._fail(Disconnected("the upstream closed the connection mid-answer"))

    # --- httptools callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_fields = 0
        self._headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer: never an answer's header
        self._head_fields += 1
        if self._head_fields > MAX_HEADER_FIELDS:
            raise BadResponse(f"an answer with more than {MAX_HEADER_FIELDS} header fields")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self._in_head = False
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, {}
        if status < 200:  # 100 Continue and other interim answers: the real one follows
            return
        if self._head is None:  # raised out of feed_data, as a parser error
            raise BadResponse("a second answer to one request")
        self._no_body = status in _NO_BODY or self._head_only
        encoding = headers.get("content-encoding", "").strip().lower()
        self._decoder = BodyDecoder(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None
        response = Response(self, status, headers)
        self._response = response
        head, self._head = self._head, None
        if self._head_only:
            # The parser cannot be told the answer to HEAD has no body: it would wait for one.
            self._complete = True
            self._keep_alive = False
            response._end()
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        self._head_bytes = 0
        response = self._response
        if response is None or self._complete:
            return
        decoder = self._decoder
        if decoder is None:
            response._feed(body)
            return
        decoder.add(body)
        if response._size < HIGH_WATER:
            self._pump()

    def on_message_complete(self) -> None:
        if self._response is None or self._complete:
            return  # an interim answer's end, or a HEAD answer ended at its head
        self._keep_alive = self._parser.should_keep_alive()  # only known until the next feed
        self._finish_body()

    # --- the client's side

    async def send(self, head: bytes, body: bytes, *, head_only: bool = False) -> Response:
        assert self.transport is not None
        if self.lost or self.transport.is_closing():  # closed between connecting and now
            raise Disconnected("the upstream closed the connection, no answer")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._head = waiter
        self._head_only = head_only
        self._head_bytes = 0
        self._complete = self._keep_alive = False
        if len(body) < LARGE_BODY:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        try:
            return await waiter
        except BaseException:
            self._head = None
            self._drop()
            raise

    def stale(self) -> bool:
        """Idle in the pool, yet closed or readable: the server closed it (or sent stray bytes)
        and the event loop has not handled that yet. Like httpcore, a readiness poll of the
        socket (one syscall, no read), so a request is not written to a connection already
        gone."""
        if self.lost or self.transport is None or self.transport.is_closing():
            return True
        if self._fd < 0:
            return False
        poll = select.poll()
        poll.register(self._fd, select.POLLIN)
        return bool(poll.poll(0))

    def finished(self, whole: bool) -> None:
        """The answer's reader is done with it: keep the connection, or close it."""
        response, self._response = self._response, None
        if whole and self._complete and self._keep_alive and not self.lost:
            self.resume()
            self._parser = httptools.HttpResponseParser(self)
            self._pool.keep(self)
            return
        if response is not None and not self._complete:
            response._fail(Disconnected("the answer was closed before its end"))
        self._drop()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        decoder = self._decoder
        if decoder is not None and decoder.pending and self._response is not None:
            self._pump()
            if decoder.pending:
                return  # the reader's buffer is full again: the socket stays paused
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _finish_body(self) -> None:
        self._complete = True
        if self._decoder is not None:
            self._pump()
            return
        response = self._response
        assert response is not None
        response._end()

    def _pump(self) -> None:
        """Inflate waiting bytes until the reader's buffer is full (reading from the socket is
        then paused); end the body once the parser saw its end and everything is inflated."""
        response, decoder = self._response, self._decoder
        assert response is not None and decoder is not None
        try:
            while decoder.pending and response._size < HIGH_WATER:
                out = decoder.take(HIGH_WATER - response._size)
                if out:
                    response._feed(out)
            if not self._complete or decoder.pending:
                return
            tail = decoder.flush()
        except zlib.error as exc:
            self._broken(BadResponse(f"a body that does not decode: {exc}"))
            return
        if tail:
            response._feed(tail)
        response._end()

    def _close_delimited(self) -> bool:
        """The body ends when the connection does (no length, not chunked)."""
        response = self._response
        if response is None:
            return False
        headers = response.headers
        return self._no_body or (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )

    def _broken(self, error: ClientFailure) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
        self._drop()

    def _drop(self) -> None:
        self.lost = self._aborted = True
        self._pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Keep-alive connections per origin (scheme, host, port), as many as are in use at once;
    every request's URL judged, every new connection's addresses judged by the resolver."""

    def __init__(
        self,
        judge: UrlJudge,
        resolver: AbstractResolver,
        *,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._judge = judge
        self._resolver = resolver
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[str, int, int]]]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        connect_timeout: float | None = None,
    ) -> Response:
        """Send one request and read the answer's head. An error status is an answer; a
        redirect is `RedirectRefused`. The caller bounds the wait for the answer. The request
        is sent once: a connection that breaks after it was written raises `Disconnected`."""
        if self._closed:
            raise Disconnected("the outgoing client is closed (the daemon is stopping)")
        problem = self._judge(url)
        if problem is not None:
            raise DestinationRefused(f"{url.host}: {problem}")
        origin = _origin(url)
        head = request_head(method, url, headers, body)
        limit = self._connect_timeout if connect_timeout is None else connect_timeout
        conn = self._pooled(origin)
        if conn is None:
            conn = await self._connect(origin, limit)
        self._busy.add(conn)
        response = await conn.send(head, body, head_only=method == "HEAD")
        if response.status in REDIRECT_STATUSES:
            response.close()
            raise RedirectRefused(
                f"{url.host} answered {response.status} with a redirect, which llmproxy "
                "never follows"
            )
        return response

    def clear_dns_cache(self) -> None:
        """Forget resolved addresses (they were judged under a policy now replaced)."""
        self._dns.clear()

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in [*self._busy, *(c for idle in self._idle.values() for c in idle)]:
            conn._drop()
        self._idle.clear()
        self._busy.clear()

    # --- the pool (called by connections)

    def keep(self, conn: _Connection) -> None:
        """`conn` read its answer whole: it waits for the next request to its origin."""
        self._busy.discard(conn)
        if self._closed:
            conn._drop()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)  # oldest first
        if self._sweep is None:  # one timer for the whole pool, not one per kept connection
            self._sweep = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._expire)

    def forget(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    def _expire(self) -> None:
        """Close the connections idle for `IDLE_SECONDS`; come back when the next one is due."""
        self._sweep = None
        now = time.monotonic()
        due: float | None = None
        for idle in list(self._idle.values()):
            while idle and now - idle[0].idle_since >= IDLE_SECONDS:
                idle[0]._drop()  # dropping takes it off the list
            if idle:
                due = idle[0].idle_since if due is None else min(due, idle[0].idle_since)
        if due is not None:
            delay = max(0.0, due + IDLE_SECONDS - now)
            self._sweep = asyncio.get_running_loop().call_later(delay, self._expire)

    def _pooled(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed
            if time.monotonic() - conn.idle_since > IDLE_SECONDS or conn.stale():
                conn._drop()
            else:
                return conn
        return None

    async def _connect(self, origin: Origin, limit: float) -> _Connection:
        """A new connection to one of the host's (judged) addresses. Like happy eyeballs
        (RFC 8305), the next address is tried `HAPPY_EYEBALLS_DELAY` after the previous one,
        or as soon as it failed: an address that never answers does not use the whole limit.
        The first to connect wins; the others are closed."""
        scheme, host, port = origin
        tls = self._tls() if scheme == "https" else None
        async with asyncio.timeout(limit):
            addresses = await self._resolve(host, port)
            if len(addresses) == 1:
                try:
                    return await self._open(origin, addresses[0], tls)
                except ConnectFailed:
                    raise
                except OSError as exc:
                    raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}", exc) from exc
            return await self._race(origin, addresses, tls)

    async def _race(
        self, origin: Origin, addresses: list[tuple[str, int, int]], tls: ssl.SSLContext | None
    ) -> _Connection:
        _, host, port = origin
        attempts: list[asyncio.Task[_Connection]] = []
        waiting: set[asyncio.Task[_Connection]] = set()
        failure: OSError | None = None
        winner: asyncio.Task[_Connection] | None = None
        try:
            while winner is None:
                if len(attempts) < len(addresses):
                    attempt = asyncio.create_task(self._open(origin, addresses[len(attempts)], tls))
                    attempts.append(attempt)
                    waiting.add(attempt)
                elif not waiting:
                    assert failure is not None
                    raise ConnectFailed(f"cannot connect to {host}:{port}: {failure}", failure)
                more = len(attempts) < len(addresses)
                done, waiting = await asyncio.wait(
                    waiting,
                    timeout=HAPPY_EYEBALLS_DELAY if more else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for attempt in done:
                    error = attempt.exception()
                    if error is None:
                        winner = winner or attempt
                    elif isinstance(error, ConnectFailed):
                        raise error  # TLS: the server was reached, another address won't do
                    elif isinstance(error, OSError):
                        failure = error
                    else:
                        raise error
            return winner.result()
        finally:
            for attempt in attempts:
                if attempt is not winner:
                    attempt.cancel()
                    attempt.add_done_callback(_close_late)

    async def _open(
        self, origin: Origin, address: tuple[str, int, int], tls: ssl.SSLContext | None
    ) -> _Connection:
        host = origin[1]
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self, origin),
                address[0],
                address[1],
                family=address[2],
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
        except ssl.SSLError as exc:  # the server was reached: another address won't do
            raise ConnectFailed(f"TLS with {host} failed: {exc}", exc) from exc
        return conn

    async def _resolve(self, host: str, port: int) -> list[tuple[str, int, int]]:
        if _is_ip(host):
            return [(host, port, socket.AF_INET6 if ":" in host else socket.AF_INET)]
        now = time.monotonic()
        kept = self._dns.get((host, port))
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except DestinationRefused:
            raise
        except OSError as exc:
            raise ConnectFailed(f"{host} does not resolve: {exc}", exc) from exc
        addresses = [(r["host"], r["port"], r["family"]) for r in results]
        if not addresses:
            raise ConnectFailed(f"{host} resolves to nothing", socket.gaierror(host))
        if len(self._dns) > 1024:
            self._dns.clear()
        self._dns[(host, port)] = (now + DNS_TTL, addresses)
        return addresses

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built once: loading the trust store takes milliseconds
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context


def _close_late(attempt: asyncio.Task[_Connection]) -> None:
    """A losing connection attempt: closed if it connected all the same."""
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result()._drop()


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _origin(url: URL) -> Origin:
    host = url.raw_host
    if url.scheme not in ("http", "https") or not host:
        raise DestinationRefused(f"{url.scheme}://{host}: not an http(s) URL")
    return (url.scheme, host, url.port or (443 if url.scheme == "https" else 80))
