"""Client keys: who may use the proxy, and where it may listen without any.

Keys are held as SHA-256 digests and every configured key is compared against every presented
credential with `hmac.compare_digest`, with no early exit: timing tells neither which key
matched nor how much of one did (the digests also hide the keys' lengths).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

from proxy.config import Config
from proxy.errors import AuthenticationError, ConfigError
from proxy.security.rejections import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Compare = Callable[[bytes, bytes], bool]

CLIENT = web.RequestKey("client", str)
"""Who sent the request, for rate limits and logs: `key-N` (N-th configured key) or
`anonymous` when no key is configured. Never the key itself."""
ANONYMOUS = "anonymous"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class ClientKeys:
    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def match(self, presented: Iterable[str], compare: Compare = hmac.compare_digest) -> str | None:
        """The id of the configured key among `presented`, or None. Every pair is compared."""
        found = 0
        for candidate in presented:
            given = _digest(candidate)
            for index, expected in enumerate(self._digests, start=1):
                hit = compare(given, expected)
                found = found or (index if hit else 0)
        return f"key-{found}" if found else None


def presented_keys(request: web.BaseRequest) -> list[str]:
    """Credentials from `x-api-key` and `Authorization` (`Bearer <key>`, or a bare key, as
    the reference proxy accepted); a client sending both is accepted if either matches."""
    keys = []
    headers = request.headers
    if api_key := headers.get("x-api-key", "").strip():
        keys.append(api_key)
    authorization = headers.get("authorization", "").strip()
    scheme, _, token = authorization.partition(" ")
    if token and scheme.lower() == "bearer":
        keys.append(token.strip())
    elif authorization and not token:
        keys.append(authorization)
    return keys


GUARDED_PATHS = ("/v1/", "/metrics", "/ui/api/")
"""The API and what it reveals about traffic (metrics, the status page's data)."""


def auth_middleware(keys: ClientKeys) -> Middleware:
    """401 in the client's dialect for `/v1/`, `/metrics` and `/ui/api/` requests without a
    configured key.

    Without keys the daemon is for this machine only, and a web page in the user's browser
    is the remaining way in: a cross-site request (a page posting to 127.0.0.1) or a DNS
    rebinding one (a page whose own name now resolves to 127.0.0.1). Both are refused with
    403: the Host must be a loopback name or address, and an Origin, if sent, too.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not keys.configured and (problem := _browser_problem(request)) is not None:
            return error_response(request, 403, problem, code="not_local")
        if not request.path.startswith(GUARDED_PATHS):
            # Elsewhere a key is optional; a valid one unlocks details (`GET /health`).
            client = keys.match(presented_keys(request)) if keys.configured else ANONYMOUS
            if client is not None:
                request[CLIENT] = client
            return await handler(request)
        if not keys.configured:
            request[CLIENT] = ANONYMOUS
            return await handler(request)
        client = keys.match(presented_keys(request))
        if client is None:
            raise AuthenticationError()
        request[CLIENT] = client
        return await handler(request)

    return middleware


def _browser_problem(request: web.BaseRequest) -> str | None:
    host = _url_host(f"http://{request.headers.get('host', '')}")
    if host is None or not is_loopback_host(host):
        return (
            "without a client key llmproxy answers only requests addressed to a loopback "
            "name (localhost, 127.0.0.1, [::1]); set [proxy] api_key to serve others"
        )
    origin = request.headers.get("origin")
    if origin is not None and not is_loopback_host(_url_host(origin) or ""):
        return f"cross-site request from origin {origin[:100]!r} refused"
    return None


def _url_host(url: str) -> str | None:
    try:
        return URL(url).host
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` keeps the daemon reachable from this machine only."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost":
        return True
    return is_loopback_address(name.strip("[]"))


def is_loopback_address(address: str | None) -> bool:
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


def check_bind(config: Config, host: str) -> None:
    """Refuse to listen beyond loopback when no client key is configured."""
    if config.proxy.api_keys or is_loopback_host(host):
        return
    raise ConfigError(
        "proxy.host",
        f"refusing to listen on {host or 'all addresses'!r} without a client key: anyone who "
        "can reach it could spend your provider keys. Set [proxy] api_key "
        '(e.g. api_key = "$LLMPROXY_API_KEY") or listen on 127.0.0.1.',
    )
