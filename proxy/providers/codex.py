"""The `codex` transport: the ChatGPT backend's Responses endpoint, with a subscription sign-in.

It is an `HttpTransport` per call, composed with a dialect that carries the call's credentials:
sending, SSE framing, phase timeouts and error classification are the shared ones. What is
codex-specific happens around it:

- the bearer token and `chatgpt-account-id` come from `CodexAuth` (refreshed before expiry);
- a 401 before any event refreshes the sign-in once and retries; a second 401 is an AUTH
  failure, which moves the request on to the next target;
- the backend only streams, so a non-streaming call reads the whole stream and returns its
  neutral events (an `UpstreamReply` without a body), which the client's API renders like any other.

A 429 `usage_limit_reached` (the plan's window is used up) is classified QUOTA_EXHAUSTED with the
body's `resets_in_seconds` as its retry-after by `classify.py`, like every other status error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from proxy.codex_auth import (
    DEFAULT_TOKEN_ENDPOINT,
    CodexAuth,
    CodexTokens,
    TokenStore,
    default_store_path,
)
from proxy.config import CODEX_BASE_URL, ProviderConfig
from proxy.errors import UpstreamError, UpstreamStatusError
from proxy.frozen import frozen, replace
from proxy.providers.base import EventBatch, StreamDecoder, UpstreamRequest
from proxy.providers.http import HttpTransport
from proxy.security.http1 import Client
from proxy.translate.stream_responses import ResponsesStreamDecoder
from proxy.types import JSONObject, UpstreamReply

# api.openai.com never accepts a ChatGPT sign-in: configs written for the reference proxy name
# it as a placeholder, and they mean the ChatGPT backend.
_API_HOSTS = frozenset({"api.openai.com"})


def codex_url(provider: ProviderConfig) -> str:
    base = provider.api_base_url.rstrip("/")
    if urlsplit(base).hostname in _API_HOSTS:
        base = CODEX_BASE_URL
    return base if base.endswith("/responses") else base + "/responses"


@frozen
class CodexDialect:
    """The per-call half of the transport: the backend's URL and headers for one sign-in."""

    tokens: CodexTokens

    def url(self, provider: ProviderConfig) -> str:
        return codex_url(provider)

    def headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "authorization": f"Bearer {self.tokens.access_token}",
            "openai-beta": "responses=experimental",
            "originator": "codex_cli_rs",
        }
        if self.tokens.account_id:
            headers["chatgpt-account-id"] = self.tokens.account_id
        headers.update(request.provider.headers)
        return headers

    def new_decoder(self) -> StreamDecoder:
        return ResponsesStreamDecoder()

    def body_error(self, payload: JSONObject) -> str | None:
        error = payload.get("error")
        if error and payload.get("object") != "response":
            return str(error.get("message") if isinstance(error, dict) else error)
        return None


class CodexTransport:
    """Sends codex UpstreamRequests; one `CodexAuth` per token store, shared by its providers."""

    def __init__(self, client: Client, max_answer_bytes: int) -> None:
        self._client = client
        self._max_answer = max_answer_bytes
        self._auth: dict[tuple[Path, str], CodexAuth] = {}

    def auth_for(self, provider: ProviderConfig) -> CodexAuth:
        path = Path(provider.auth_file).expanduser() if provider.auth_file else default_store_path()
        endpoint = provider.token_endpoint or DEFAULT_TOKEN_ENDPOINT
        key = (path, endpoint)
        if key not in self._auth:
            self._auth[key] = CodexAuth(TokenStore(path), self._client, token_endpoint=endpoint)
        return self._auth[key]

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        """The backend only streams: the whole stream's events, for the client's API to
        render."""
        events = self.stream(request)
        try:
            return UpstreamReply(None, tuple([event async for batch in events for event in batch]))
        finally:
            await _close(events)

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[EventBatch]:
        auth = self.auth_for(request.provider)
        body = {**request.body, "stream": True, "store": False}
        upstream = replace(request, body=body, stream=True)
        try:
            tokens = await auth.tokens()
        except UpstreamError as exc:
            raise _for_target(exc, request) from exc
        retried = False
        while True:
            transport = HttpTransport(self._client, CodexDialect(tokens), self._max_answer)
            events = transport.stream(upstream)
            try:
                first = await anext(events)
            except UpstreamStatusError as exc:
                await _close(events)
                if exc.status != 401 or retried:
                    raise
                retried = True
                try:
                    tokens = await auth.after_rejection(tokens)
                except UpstreamError as refresh_error:
                    raise _for_target(refresh_error, request) from refresh_error
                continue
            except StopAsyncIteration:
                return
            except BaseException:
                await _close(events)
                raise
            try:
                yield first
                async for batch in events:
                    yield batch
            finally:
                await _close(events)
            return


async def _close(events: AsyncIterator[EventBatch]) -> None:
    """Close a transport's stream early (it is an async generator; the type says iterator)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _for_target(error: UpstreamError, request: UpstreamRequest) -> UpstreamError:
    """An auth failure, attributed to the target that needed the sign-in."""
    return type(error)(
        error.message,
        target=request.target,
        status=error.status,
        error_class=error.error_class,
        body=error.body,
        headers=error.headers,
        retry_after=error.retry_after,
    )
