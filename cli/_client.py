"""A chat turn through a running daemon, over httpx2 (the HTTP client the official SDKs use),
or in this process when none answers. Commands that only talk to the daemon
(`chat` through it, `status`, `stop`, `reload`, the launchers) load this and never aiohttp,
the routing code or a provider secret; aiohttp stays in the daemon.

Every transport failure becomes a `TurnError` or `DaemonUnreachable` whose message says what
was tried and what to do, never an exception from the HTTP library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx2
import orjson

from cli._address import (
    DEFAULT_DAEMON_URL,
    BadURL,
    daemon_url,
    health_answer,
    needs_tls,
    normalize_url,
    unreachable,
)
from proxy.affinity import AFFINITY_HEADER
from proxy.conversation import SESSION_HEADER
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
from proxy.types import ATTEMPT_DETAILS, ClientAPI, JSONObject, StreamEvent

if TYPE_CHECKING:
    from proxy.config import Config

Sink = Callable[[StreamEvent], None]
PROBE_SECONDS = 0.5  # a local daemon answers /health at once; none answering means none is up


@dataclass(frozen=True, slots=True)
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

    async def run(
        self, fmt: ClientAPI, body: JSONObject, sink: Sink, session: str | None = None
    ) -> TurnInfo: ...

    async def aclose(self) -> None: ...


# --- a chat turn through the daemon -------------------------------------------------------------


class DaemonBackend:
    def __init__(
        self, url: str, api_key: str | None, *, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        """`transport`: how to reach the daemon when not by `url`'s address (the in-process
        app's Unix socket)."""
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.label = f"daemon {self.url}"
        # One client for the whole session; no read timeout: a long answer may think for minutes.
        self.client = httpx2.AsyncClient(
            trust_env=False,
            verify=needs_tls(self.url),
            timeout=httpx2.Timeout(None, connect=10.0),
            transport=transport,
        )

    async def run(
        self, fmt: ClientAPI, body: JSONObject, sink: Sink, session: str | None = None
    ) -> TurnInfo:
        started = time.monotonic()
        attempts: tuple[AttemptNote, ...] = ()
        headers = client_headers(fmt, self.api_key)
        if session is not None:
            headers[SESSION_HEADER] = session
        try:
            async with self.client.stream(
                "POST", self.url + client_path(fmt), content=orjson.dumps(body), headers=headers
            ) as response:
                attempts = attempts_from_details(
                    response.headers.get(ATTEMPT_DETAILS, "")
                ) or parse_attempts(response.headers.get(ATTEMPTS_HEADER, ""))
                affinity = response.headers.get(AFFINITY_HEADER)
                if response.status_code != 200:
                    raw = await response.aread()
                    payload = _json(raw)
                    raise TurnError(
                        error_message(payload, raw),
                        attempts_from_error(payload) or attempts,
                        response.status_code,
                        _ms(started),
                    )
                if body.get("stream"):
                    reader = StreamReader(fmt)
                    async for chunk in response.aiter_raw():
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
                    for event in events_from_body(_json(await response.aread()), fmt):
                        sink(event)
        except UpstreamError as exc:  # an error event inside the stream
            raise TurnError(exc.message, attempts, exc.status, _ms(started)) from exc
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise TurnError(unreachable(self.url, exc), latency_ms=_ms(started)) from exc
        except httpx2.HTTPError as exc:
            raise TurnError(
                f"the daemon at {self.url} broke off the answer ({type(exc).__name__})",
                attempts,
                None,
                _ms(started),
            ) from exc
        return TurnInfo(attempts, _ms(started), self.label, affinity)

    async def model_ids(self) -> list[str]:
        """`GET /v1/models`: every target and alias the daemon serves ([] if it will not say)."""
        try:
            response = await self.client.get(
                self.url + "/v1/models", headers=client_headers(ClientAPI.OPENAI, self.api_key)
            )
            data = orjson.loads(response.content).get("data")
        except (httpx2.HTTPError, orjson.JSONDecodeError, AttributeError):
            return []
        return (
            [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
            if isinstance(data, list)
            else []
        )

    async def answers(self) -> bool:
        """Whether llmproxy answers `GET /health` here: asked with this client, so a chat's
        first turn reuses the connection and no second (sync) HTTP stack is loaded."""
        try:
            response = await self.client.get(self.url + "/health", timeout=PROBE_SECONDS)
        except httpx2.HTTPError:
            return False
        return health_answer(response) is not None

    async def aclose(self) -> None:
        await self.client.aclose()


async def open_backend(
    config: Config | None,
    *,
    url: str | None,
    in_process: bool,
    api_key: str | None,
    full_config: Callable[[], Config] | None = None,
) -> Backend:
    """`--in-process` > `--url` > the configured daemon if it answers > in-process.

    `config` may have been read without the providers' secrets; `full_config` loads the config
    with them, and is only called when this process must call the providers itself. Without a
    config, only a daemon can serve. Raises TurnError with advice when nothing can.
    """
    key = api_key or next((k for k in (config.proxy.api_keys if config else ()) if k), None)
    if url is not None and not in_process:
        try:
            return DaemonBackend(normalize_url(url), key)
        except BadURL as exc:
            raise TurnError(f"--url: {exc}") from None
    if not in_process:
        candidate = DaemonBackend(
            daemon_url(config) if config is not None else DEFAULT_DAEMON_URL, key
        )
        if await candidate.answers():
            return candidate
        await candidate.aclose()
        if config is None:
            raise TurnError(
                f"no config file found and no daemon at {DEFAULT_DAEMON_URL}. Create a config "
                "with `llmproxy init`, or start the offline demo with `llmproxy serve --simulate`."
            )
    elif config is None:
        raise TurnError("--in-process needs a config file (see `llmproxy init`)")
    from cli._engine import in_process_backend  # routing, providers and aiohttp: only now

    return in_process_backend(full_config() if full_config is not None else config, api_key)


def _json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
