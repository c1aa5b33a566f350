"""The one error tree of llmproxy.

    LLMProxyError
    ├── ConfigError (ValueError)             config file or value is wrong; names the key
    ├── RoutingError (LookupError)           no target can serve the request
    ├── ClientRequestError (ValueError)      the client's request is malformed -> 4xx
    │   └── AuthenticationError              missing or wrong client key -> 401
    ├── UpstreamError                        one upstream attempt failed; carries its ErrorClass
    │   ├── UpstreamStatusError              upstream answered with an error status or error body
    │   ├── UpstreamTimeoutError (TimeoutError)   connect, headers, first token or idle gap
    │   ├── UpstreamConnectionError (ConnectionError)   reset, dropped
    │   │   └── UpstreamRefusedError             refused, DNS: no same-target retry
    │   ├── UpstreamUnavailable              skipped before sending (format unsupported, breaker)
    │   └── StreamCutError                   stream ended before its finish reason
    ├── ClientFacingError                    an upstream answer that goes back to the client
    │                                        as it is (invalid request, refusal); wraps it
    └── ChainExhaustedError                  every target failed; carries the attempts

Handlers turn ClientRequestError, ClientFacingError and ChainExhaustedError into the client's
own error dialect; the fallback loop decides only from UpstreamError.error_class, never from
message text. Lower-layer exceptions (aiohttp, sockets) become UpstreamErrors in one place,
`proxy.providers.boundary`.

Outside the tree are errors that never leave the module pair that raises and catches them:
the rate limiter's `RateLimited` and `LimitsUnavailable` (answered by its middleware),
`management.ChangeRefused` (answered by the management API) and the CLI's `TurnError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from proxy.types import Attempt, ErrorClass, JSONObject, ProviderFormat, Target


def closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known word most like `word`, for an error's "did you mean": `difflib`, which only
    a wrong config needs, is loaded then (0.2 MB a daemon would hold)."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


class LLMProxyError(Exception):
    """Base of every error that crosses llmproxy's layers (see the tree above)."""


class ConfigError(LLMProxyError, ValueError):
    """A config problem. `key` is the dotted path of the offending key, e.g. `router.think`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class RoutingError(LLMProxyError, LookupError):
    """Routing could not produce a chain (unknown explicit provider, model not served...)."""


class ClientRequestError(LLMProxyError, ValueError):
    """The client's request is invalid; answered with `status` in the client's dialect."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


class AuthenticationError(ClientRequestError):
    def __init__(self, message: str = "invalid or missing API key") -> None:
        super().__init__(message, status=401)


class UpstreamError(LLMProxyError):
    """One upstream attempt failed.

    `status` is the HTTP status when there was one; `body` is the upstream error payload, kept so
    that a plain invalid request can be handed back to the client unchanged.
    """

    error_class: ErrorClass = ErrorClass.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        target: Target | None = None,
        status: int | None = None,
        error_class: ErrorClass | None = None,
        body: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.status = status
        if error_class is not None:
            self.error_class = error_class
        self.body = body
        self.headers = dict(headers or {})
        self.retry_after = retry_after


class UpstreamStatusError(UpstreamError):
    pass


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    error_class = ErrorClass.TIMEOUT


class UpstreamConnectionError(UpstreamError, ConnectionError):
    error_class = ErrorClass.CONNECTION


class UpstreamRefusedError(UpstreamConnectionError):
    """Nobody listens (or DNS failed): the service is down, so an instant retry is pointless."""


class UpstreamUnavailable(UpstreamError):
    error_class = ErrorClass.UNAVAILABLE


class StreamCutError(UpstreamError):
    error_class = ErrorClass.STREAM_CUT


class ClientFacingError(LLMProxyError):
    """An upstream answer that goes back to the client as-is (invalid request, refusal), in the
    client's dialect; `provider` is the format the upstream's error body is in."""

    def __init__(
        self, error: UpstreamError, provider: ProviderFormat, attempts: tuple[Attempt, ...]
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.provider = provider
        self.attempts = attempts


class ChainExhaustedError(LLMProxyError):
    """Every target of the chain failed (or was skipped). `last` is the last upstream error."""

    def __init__(self, attempts: tuple[Attempt, ...], last: UpstreamError | None) -> None:
        summary = "; ".join(f"{a.target}={a.outcome}" for a in attempts) or "no targets"
        super().__init__(f"all targets failed: {summary}")
        self.attempts = attempts
        self.last = last

    @property
    def error_class(self) -> ErrorClass:
        return self.last.error_class if self.last else ErrorClass.UNAVAILABLE

    @property
    def status(self) -> int:
        """The HTTP status the client gets: the last upstream's class, never a bare 500."""
        return STATUS_FOR_CLASS.get(self.error_class, 502)


STATUS_FOR_CLASS: dict[ErrorClass, int] = {
    ErrorClass.RATE_LIMITED: 429,
    ErrorClass.QUOTA_EXHAUSTED: 429,
    ErrorClass.SERVER_ERROR: 502,
    ErrorClass.TIMEOUT: 504,
    ErrorClass.CONNECTION: 502,
    ErrorClass.CONTEXT_LENGTH: 400,
    ErrorClass.CONTENT_FILTER: 400,
    ErrorClass.AUTH: 502,
    ErrorClass.NOT_FOUND: 502,
    ErrorClass.INVALID_REQUEST: 400,
    ErrorClass.UNAVAILABLE: 503,
    ErrorClass.STREAM_CUT: 502,
    ErrorClass.BAD_RESPONSE: 502,
}
