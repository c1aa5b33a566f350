"""What the outgoing HTTP/1.1 client (`http1`) writes and reads, apart from the socket: a
request's head, and an answer's body as its reader sees it (`Response`, fed by the connection,
which pauses at `HIGH_WATER`) and as it is decoded (`BodyDecoder`)."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Mapping
from typing import Protocol

from yarl import URL

HIGH_WATER = 1024 * 1024
"""Unread body bytes at which reading from the socket pauses until the reader catches up."""
MAX_GZIP_MEMBERS = 1024
USER_AGENT = "llmproxy"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BODILESS_METHODS = frozenset({"GET", "HEAD"})
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Written by this client from the request itself; a caller's are ignored."""


class HeaderRefused(ValueError):
    """A header that cannot be sent: a control character, or a name that is not a token."""


class AnswerSource(Protocol):
    """The connection an answer is read from."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def finished(self, whole: bool) -> None: ...


class Response:
    """One answer, its headers read. The body is read with `read_nowait`/`readany`; `release`
    (after the whole body) gives the connection back to the pool, `close` drops it. One of the
    two must be called."""

    __slots__ = ("_chunks", "_conn", "_eof", "_error", "_size", "_waiter", "headers", "status")

    def __init__(self, conn: AnswerSource, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        """Lower-case names; a repeated header's values joined with ", "."""
        self._conn: AnswerSource | None = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    def is_eof(self) -> bool:
        """The whole body was read."""
        return self._eof and not self._chunks

    def read_nowait(self) -> bytes:
        """What arrived and was not read yet: b"" when nothing did (see `is_eof`)."""
        if not self._chunks:
            if self._error is not None:
                raise self._error
            return b""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        full, self._size = self._size >= HIGH_WATER, 0
        if full and self._conn is not None:
            self._conn.resume()  # may feed the next decoded bytes at once
        return data

    async def readany(self) -> bytes:
        """The next data, waiting for it; b"" at the end of the body."""
        while not self._chunks and not self._eof and self._error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.read_nowait()

    def release(self) -> None:
        """Done with this answer: its connection is kept if the body was read whole."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(self.is_eof() and self._error is None)

    def close(self) -> None:
        """Done with this answer, read or not: its connection is closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(False)

    # --- fed by the connection

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _end(self) -> None:
        self._eof = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._eof and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class BodyDecoder:
    """A gzip body (of one member or several) or a deflate body (zlib-wrapped, or raw as some
    servers send it), inflated on demand: compressed bytes wait here until the reader has
    room, so what a small body inflates to never sits in memory at once."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding != "deflate"
        self._raw_allowed = not self._gzip
        self._z = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header, detected
        self._members = 1
        self._input = b""

    @property
    def pending(self) -> bool:
        """Compressed bytes wait to be inflated."""
        return bool(self._input)

    def add(self, data: bytes) -> None:
        self._input = self._input + data if self._input else data

    def take(self, limit: int) -> bytes:
        """At most `limit` inflated bytes (zlib.error if the body does not decode)."""
        data, self._input = self._input, b""
        if self._raw_allowed:
            self._raw_allowed = False
            try:
                out = self._z.decompress(data, limit)
            except zlib.error:
                self._z = zlib.decompressobj(wbits=-15)
                out = self._z.decompress(data, limit)
        else:
            out = self._z.decompress(data, limit)
        self._input = self._z.unconsumed_tail
        if self._z.eof and self._gzip:
            rest = self._z.unused_data
            if rest.strip(b"\0"):  # another member follows (zero padding is allowed after one)
                self._members += 1
                if self._members > MAX_GZIP_MEMBERS:
                    raise zlib.error(f"more than {MAX_GZIP_MEMBERS} gzip members")
                self._z = zlib.decompressobj(wbits=31)
                self._input = rest
        return out

    def flush(self) -> bytes:
        return self._z.flush()


def request_head(method: str, url: URL, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request line and headers, or HeaderRefused before anything is sent."""
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"]
    agent = encoding = True
    for name, value in headers.items():
        if _CONTROL.search(value) or not _TOKEN.fullmatch(name):
            raise HeaderRefused(f"the header {name!r} cannot be sent (a control character)")
        lower = name.lower()
        if lower in _OWN_HEADERS:
            continue
        agent = agent and lower != "user-agent"
        encoding = encoding and lower != "accept-encoding"
        lines.append(f"{name}: {value}\r\n")
    if body or method not in _BODILESS_METHODS:
        lines.append(f"Content-Length: {len(body)}\r\n")
    if encoding:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if agent:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    lines.append("\r\n")
    try:
        # A client's byte that is not UTF-8 reaches us as a surrogate (aiohttp's server decodes
        # with surrogateescape): it leaves as the byte it arrived as.
        return "".join(lines).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise HeaderRefused(f"a header cannot be encoded for sending: {exc.reason}") from exc
