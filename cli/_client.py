"""A chat turn through a running daemon, or in this process when none answers. Commands that
only talk to the daemon (`chat` through it, `status`, `stop`, `reload`, the launchers) load
this and never aiohttp, asyncio, the routing code or a provider secret; the in-process app
(`cli._engine`) is reached through the same client, over a Unix socket.

Every transport failure becomes a `TurnError` whose message says what was tried and what to
do, never an exception from the HTTP layer (`cli._http`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import orjson

from cli._address import (
    DEFAULT_DAEMON_URL,
    BadURL,
    daemon_url,
    health_of,
    normalize_url,
    unreachable,
)
from cli._http import Broken, ConnectFailed, DaemonHTTP
from proxy.config.address import DaemonAddress
from proxy.daemon_client import (
    ATTEMPTS_HEADER,
    AttemptNote,
    StreamReader,
    attempts_from_details,
    attempts_from_error,
    client_headers,
    client_path,
    error_message,
    events_from_body,
    parse_attempts,
    served_by,
)
from proxy.errors import UpstreamError
from proxy.frozen import frozen
from proxy.types import (
    AFFINITY_HEADER,
    ATTEMPT_DETAILS,
    SESSION_HEADER,
    ClientAPI,
    JSONObject,
    StreamEvent,
)

if TYPE_CHECKING:
    from proxy.config import Config

Sink = Callable[[StreamEvent], None]
PROBE_SECONDS = 0.5  # a local daemon answers /health at once; none answering means none is up


@frozen
class TurnInfo:
    attempts: tuple[AttemptNote, ...]
    latency_ms: float
    via: str
    affinity: str | None = None
    """What prompt-cache affinity decided for this turn (`x-llmproxy-affinity`)."""

    @property
    def served_by(self) -> str | None:
        return served_by(self.attempts)


class TurnError(Exception):
    """The request failed as a whole: every target failed, or the answer was refused."""

    def __init__(
        self,
        message: str,
        attempts: tuple[AttemptNote, ...] = (),
        status: int | None = None,
        latency_ms: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.status = status
        self.latency_ms = latency_ms


class Backend(Protocol):
    label: str

    def run(
        self, fmt: ClientAPI, body: JSONObject, sink: Sink, session: str | None = None
    ) -> TurnInfo: ...

    def close(self) -> None: ...


# --- a chat turn through the daemon -------------------------------------------------------------


class DaemonBackend:
    def __init__(self, url: str, api_key: str | None, *, socket_path: str | None = None) -> None:
        """`socket_path`: how to reach the daemon when not by `url`'s address (the in-process
        app's Unix socket)."""
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.label = f"daemon {self.url}"
        self.http = DaemonHTTP(self.url, socket_path=socket_path)

    def run(
        self, fmt: ClientAPI, body: JSONObject, sink: Sink, session: str | None = None
    ) -> TurnInfo:
        started = time.monotonic()
        attempts: tuple[AttemptNote, ...] = ()
        headers = client_headers(fmt, self.api_key)
        if session is not None:
            headers[SESSION_HEADER] = session
        try:
            # No read timeout: a long answer may think for minutes.
            with self.http.request(
                "POST", client_path(fmt), body=orjson.dumps(body), headers=headers
            ) as response:
                attempts = attempts_from_details(
                    response.headers.get(ATTEMPT_DETAILS, "")
                ) or parse_attempts(response.headers.get(ATTEMPTS_HEADER, ""))
                affinity = response.headers.get(AFFINITY_HEADER)
                if response.status != 200:
                    raw = response.read()
                    payload = _json(raw)
                    raise TurnError(
                        error_message(payload, raw),
                        attempts_from_error(payload) or attempts,
                        response.status,
                        _ms(started),
                    )
                if body.get("stream"):
                    reader = StreamReader(fmt)
                    for chunk in response.chunks():
                        for event in reader.feed(chunk):
                            sink(event)
                    for event in reader.close():
                        sink(event)
                    attempts = reader.trailer or attempts
                    if not reader.ended:
                        raise TurnError(
                            "the stream ended before the answer was complete",
                            attempts,
                            200,
                            _ms(started),
                        )
                else:
                    for event in events_from_body(_json(response.read()), fmt):
                        sink(event)
        except UpstreamError as exc:  # an error event inside the stream
            raise TurnError(exc.message, attempts, exc.status, _ms(started)) from exc
        except ConnectFailed as exc:
            raise TurnError(unreachable(self.url, exc), latency_ms=_ms(started)) from exc
        except Broken as exc:
            raise TurnError(
                f"the daemon at {self.url} {exc}",
                attempts,
                None,
                _ms(started),
            ) from exc
        return TurnInfo(attempts, _ms(started), self.label, affinity)

    def model_ids(self) -> list[str]:
        """`GET /v1/models`: every target and alias the daemon serves ([] if it will not say)."""
        headers = client_headers(ClientAPI.OPENAI, self.api_key)
        try:
            with self.http.request("GET", "/v1/models", headers=headers, timeout=10.0) as answer:
                data = orjson.loads(answer.read()).get("data")
        except (ConnectFailed, Broken, orjson.JSONDecodeError, AttributeError):
            return []
        return (
            [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
            if isinstance(data, list)
            else []
        )

    def answers(self) -> bool:
        """Whether llmproxy answers `GET /health` here."""
        return health_of(self.http, PROBE_SECONDS) is not None

    def close(self) -> None:
        """Nothing stays open between requests."""


def open_backend(
    address: DaemonAddress | None,
    *,
    url: str | None,
    in_process: bool,
    api_key: str | None,
    full_config: Callable[[], Config] | None = None,
) -> Backend:
    """`--in-process` > `--url` > the configured daemon if it answers > in-process.

    `address`: the configured daemon's, None without a config file. `full_config` loads the
    config with the providers' secrets, and is only called when this process must call the
    providers itself; without it, only a daemon can serve. Raises TurnError with advice when
    nothing can.
    """
    key = api_key or (address.api_key if address is not None else None)
    if url is not None and not in_process:
        try:
            return DaemonBackend(normalize_url(url), key)
        except BadURL as exc:
            raise TurnError(f"--url: {exc}") from None
    if not in_process:
        candidate = DaemonBackend(
            daemon_url(address) if address is not None else DEFAULT_DAEMON_URL, key
        )
        if candidate.answers():
            return candidate
        if address is None or full_config is None:
            raise TurnError(
                f"no config file found and no daemon at {DEFAULT_DAEMON_URL}. Create a config "
                "with `llmproxy init`, or start the offline demo with `llmproxy serve --simulate`."
            )
    elif address is None or full_config is None:
        raise TurnError("--in-process needs a config file (see `llmproxy init`)")
    from cli._engine import in_process_backend  # routing, providers and aiohttp: only now

    return in_process_backend(full_config(), api_key)


def _json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
