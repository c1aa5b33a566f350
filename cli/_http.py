"""HTTP/1.1 to the daemon, blocking, on the standard library's `http.client`.

The commands that only talk to a daemon (`chat` through it, `status`, `stop`, `reload`, the
launchers) make one or two requests to a local process and then exit, so their start-up is
most of their cost: `http.client` imports in about a third of the time httpx2 takes and needs
no event loop (asyncio alone costs about twice the interpreter's own start-up), which is what
keeps `chat`'s first byte within its budget (tests/bench/bench_startup.py). aiohttp stays in
the daemon; the in-process app (`cli._engine`) is reached the same way, over a Unix socket.

Every failure is one of two errors, mapped here and nowhere else: `ConnectFailed` (nothing
answered: refused, no route, too slow) and `Broken` (the answer was cut or was not HTTP).
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from urllib.parse import urlsplit

CHUNK = 65536


class ConnectFailed(ConnectionError):
    """Nothing answered; `why` says how, in a few words."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url}: {why}")
        self.why = why


class Broken(ConnectionError):
    """The daemon's answer was cut short or was not HTTP; the message reads after "the daemon
    at URL": `broke off the answer (11 bytes read, 489 more expected)`."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host a local client names
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    """One answer: the status and headers are read; the body is read on demand."""

    def __init__(self, connection: http.client.HTTPConnection, raw: http.client.HTTPResponse):
        self._connection = connection
        self._raw = raw
        self.status = raw.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in raw.getheaders()}

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        while chunk := self._read(self._raw.read1, CHUNK):
            yield chunk

    def read(self) -> bytes:
        return self._read(self._raw.read)

    def _read(self, read: Callable[..., bytes], *args: int) -> bytes:
        try:
            data = read(*args)
        except (http.client.HTTPException, OSError) as exc:
            raise Broken(f"broke off the answer ({_why(exc)})") from exc
        return data

    def close(self) -> None:
        self._raw.close()
        self._connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DaemonHTTP:
    """Requests to one daemon: `url` (http or https), or the Unix socket at `socket_path`.

    A connection per request: a local connect costs far less than noticing that a kept-alive
    one was closed meanwhile, and an interactive chat sends a request every few seconds at most.
    """

    def __init__(
        self, url: str, *, socket_path: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port
        self.base = parts.path.rstrip("/")
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request and read the answer's head. `timeout` bounds the connect and every
        read after it; without one, only the connect is bounded (an answer may think for
        minutes)."""
        connection = self._connection(timeout if timeout is not None else self.connect_timeout)
        try:
            try:
                connection.connect()
            except TimeoutError as exc:
                raise ConnectFailed(self.url, "no answer in time") from exc
            except ConnectionRefusedError as exc:
                raise ConnectFailed(self.url, "connection refused") from exc
            except OSError as exc:  # no such host or socket file, unreachable
                raise ConnectFailed(self.url, f"cannot connect: {_name(exc)}") from exc
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, self.base + path, body=body, headers=dict(headers or {}))
                raw = connection.getresponse()
            except TimeoutError as exc:
                raise ConnectFailed(self.url, "no answer in time") from exc
            except (http.client.HTTPException, OSError) as exc:
                raise Broken(f"gave no HTTP answer ({_why(exc)})") from exc
        except BaseException:
            connection.close()
            raise
        return Response(connection, raw)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _UnixConnection(self.socket_path, timeout)
        if self.tls:
            import ssl  # certificates only for https: loading them costs about 100 ms

            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def _why(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words."""
    if isinstance(exc, http.client.IncompleteRead):
        more = f", {exc.expected} more expected" if exc.expected else ""
        return f"{len(exc.partial)} bytes read{more}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection closed"
    if isinstance(exc, http.client.BadStatusLine):
        line = str(exc.args[0]) if exc.args else ""
        return f"it began {line.strip()[:60]!r}"
    return _name(exc)


def _name(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
