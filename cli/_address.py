"""Where the daemon is and whether it answers: its URL from the config or a `--url`, and
`GET /health` (`cli._http`). `status`, `stop`, `reload` and the launchers need nothing more, so
this module loads no wire-format code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from cli._http import Broken, ConnectFailed, DaemonHTTP
from proxy.config.address import DaemonAddress

if TYPE_CHECKING:
    from proxy.config import Config

DEFAULT_DAEMON_URL = "http://127.0.0.1:3456"
START_HINT = "start one with `llmproxy serve --detach`"


def daemon_url(config: Config | DaemonAddress) -> str:
    """Where the configured daemon listens, as a client reaches it."""
    if isinstance(config, DaemonAddress):
        return reachable_url(config.host, config.port)
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
    """`GET /health`; None unless llmproxy answers. A daemon with client keys lists providers
    and targets only for a valid `api_key`."""
    return health_of(DaemonHTTP(url), timeout, api_key)


def health_of(
    daemon: DaemonHTTP, timeout: float = 0.5, api_key: str | None = None
) -> dict[str, Any] | None:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with daemon.request("GET", "/health", headers=headers, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except (ConnectFailed, Broken):
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return body if ok else None


def unreachable(url: str, exc: ConnectFailed) -> str:
    """`nothing answers at URL (connection refused); start one with ...`."""
    return f"nothing answers at {url} ({exc.why}); {START_HINT}, or pass --url"
