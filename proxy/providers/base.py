"""What every upstream transport shares: one request description and the dialect contract."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import orjson

from proxy.classify import classify, fault_status
from proxy.config import ProviderConfig
from proxy.errors import UpstreamStatusError
from proxy.frozen import field, frozen
from proxy.types import Decoded, JSONObject, StreamEvent, Target, UpstreamFault


@frozen
class UpstreamRequest:
    """One call to one target. `body` is already in the provider's wire format."""

    target: Target
    provider: ProviderConfig
    body: JSONObject
    stream: bool
    # Client headers that must reach a same-format provider (anthropic-beta, anthropic-version).
    forward_headers: Mapping[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    deadline: float = math.inf
    """The whole request's deadline (`time.monotonic()`): every wait before the answer's first
    content ends by then. The transport folds it into its own limits, so an attempt runs under
    one timer, not one per layer."""


EventBatch = list[StreamEvent]
"""The events one read of an upstream's body produced, in order (never empty)."""


class StreamDecoder(Protocol):
    """Upstream SSE payloads -> neutral stream events, and the upstream's own errors as
    `UpstreamFault`s (which `fault_error` classifies)."""

    def feed(self, event: str | None, payload: JSONObject) -> Sequence[Decoded]: ...

    def close(self) -> list[StreamEvent]: ...


def fault_error(
    fault: UpstreamFault, target: Target | None, *, inside: str = "the stream"
) -> UpstreamStatusError:
    """An error reported inside a stream (or a whole answer's 2xx body), classified like an
    error response. The status is the one the wire format pairs with the error, else what its
    code or text stands for; without any, the 200 says nothing, so it is taken as the server's
    failure (500) and message wording (rate limit, quota...) still decides."""
    status = fault.status if fault.status is not None else fault_status(fault.body)
    found = classify(status or 500, orjson.dumps(fault.body), {})
    return UpstreamStatusError(
        f"error inside {inside}: {found.message}",
        target=target,
        status=status,
        error_class=found.error_class,
        body=fault.body,
    )


class Dialect(Protocol):
    """The per-wire-format half of a transport: where to send, which headers, how to decode.

    A new dialect is justified only by a new wire format or auth scheme, never by a provider's
    name: every OpenAI-compatible service is served by the `openai` dialect and configuration.
    """

    def url(self, provider: ProviderConfig) -> str: ...

    def headers(self, request: UpstreamRequest) -> dict[str, str]: ...

    def new_decoder(self) -> StreamDecoder: ...

    def body_error(self, payload: JSONObject) -> str | None:
        """The error message of a 2xx body that is really an error, else None."""
        ...
