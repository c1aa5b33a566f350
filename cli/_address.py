"""Where the daemon is and whether it answers: its URL from the config or a `--url`, and
`GET /health` over httpx2. `status`, `stop`, `reload` and the launchers need nothing more, so
this module loads no wire-format code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
import orjson

if TYPE_CHECKING:
    from proxy.config import Config

DEFAULT_DAEMON_URL = "http://127.0.0.1:3456"
START_HINT = "start one with `llmproxy serve --detach`"


def daemon_url(config: Config) -> str:
    """Where the configured daemon listens, as a client reaches it."""
    return reachable_url(config.proxy.host, config.proxy.port)


def reachable_url(host: str, port: int) -> str:
    """The URL a local client uses for a bind address (wildcards mean loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class BadURL(ValueError):
    pass


def normalize_url(url: str) -> str:
    """What a user may type for the daemon (`localhost:3456`, the SDK base URL
    `http://host:3456/v1`) -> its root, `http://host:3456`. Raises BadURL with the reason."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise BadURL(f"{url!r} is not a URL ({exc}); e.g. http://127.0.0.1:3456") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL(f"{url!r} is not an http(s) URL with a host; e.g. http://127.0.0.1:3456")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def url_option(url: str) -> str:
    """A `--url` value, normalised, or exit with why it is not one."""
    try:
        return normalize_url(url)
    except BadURL as exc:
        from cli._output import fail

        fail(f"--url: {exc}")


def health(url: str, timeout: float = 0.5, api_key: str | None = None) -> dict[str, Any] | None:
    """`GET /health` without the environment's HTTP proxy; None unless llmproxy answers. A
    daemon with client keys lists providers and targets only for a valid `api_key`."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx2.get(
            url.rstrip("/") + "/health",
            timeout=timeout,
            trust_env=False,
            verify=needs_tls(url),
            headers=headers,
        )
    except httpx2.HTTPError:
        return None
    return health_answer(response)


def health_answer(response: httpx2.Response) -> dict[str, Any] | None:
    """The body of a `GET /health` response when it is llmproxy's, else None."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    ok = response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return body if ok else None


def needs_tls(url: str) -> bool:
    """Certificates are loaded only for https: building that context costs about 100 ms, a
    large share of a short command against a plain-http daemon on this machine."""
    return url.startswith("https://")


def unreachable(url: str, exc: BaseException) -> str:
    """`nothing answers at URL (connection refused); start one with ...`."""
    if isinstance(exc, httpx2.ConnectError):
        why = "connection refused" if _refused(exc) else "cannot connect"
    elif isinstance(exc, httpx2.TimeoutException):
        why = "no answer in time"
    else:
        why = type(exc).__name__
    return f"nothing answers at {url} ({why}); {START_HINT}, or pass --url"


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        if isinstance(seen, BaseExceptionGroup):
            return any(_refused(inner) for inner in seen.exceptions)
        seen = seen.__cause__ or seen.__context__
    return False
