"""Scriptable faults for simulated providers, and the plan that hands them out.

A fault is a frozen value describing how one request goes wrong; `FaultPlan` decides which fault
(or `None`, healthy) each request gets: first from a FIFO queue, then from seeded random draws,
then from a default. The plan is the only mutable piece and guards itself with a lock, because
`SimulatorThread` lets a test thread replace it while the server thread consumes it.

Stream faults count *content chunks*: deltas that carry text, reasoning or tool-call argument
fragments. Structural frames (role chunk, `message_start`, block starts/stops) are not counted.
For non-streaming requests the stream faults degrade to their nearest JSON equivalent (see
`delivery.py`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from proxy.frozen import field, frozen
from proxy.simulate.wire import anthropic_error, openai_error
from proxy.types import JSONObject, ProviderFormat


@frozen
class Status:
    """Answer with an HTTP error status before any content.

    `body=None` means the provider-shaped default for `code` (OpenAI or Anthropic dialect); a str
    body is sent as-is as text/plain (some providers answer 5xx with non-JSON text).
    """

    code: int
    body: JSONObject | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    retry_after_ms: int | None = None

    @property
    def label(self) -> str:
        return f"Status({self.code})"


@frozen
class Reset:
    """Close the connection (TCP RST) before any response byte."""

    @property
    def label(self) -> str:
        return "Reset"


@frozen
class Hang:
    """Never answer; the handler waits until the client gives up or the simulator stops."""

    @property
    def label(self) -> str:
        return "Hang"


@frozen
class SlowFirstByte:
    """Wait `seconds` before sending the response headers."""

    seconds: float

    @property
    def label(self) -> str:
        return "SlowFirstByte"


@frozen
class SlowFirstToken:
    """Send headers at once, then wait `seconds` before the first SSE event."""

    seconds: float

    @property
    def label(self) -> str:
        return "SlowFirstToken"


@frozen
class CutAfter:
    """Stream `chunks` content chunks, then close the connection mid-body (no finish, no end)."""

    chunks: int

    @property
    def label(self) -> str:
        return "CutAfter"


@frozen
class StallAfter:
    """Stream `chunks` content chunks, go silent for `seconds`, then carry on normally."""

    chunks: int
    seconds: float

    @property
    def label(self) -> str:
        return "StallAfter"


@frozen
class MidStreamError:
    """Stream `chunks` content chunks, then an in-stream error event in the provider's dialect,
    then end the body. `body=None` uses the provider-shaped default for `status`.

    With `fraction`, the error comes after that share of the reply's content chunks instead, so
    it falls wherever that is: in the reasoning, the answer text or a tool call's arguments."""

    chunks: int
    status: int = 500
    body: JSONObject | None = None
    fraction: float | None = None

    @property
    def label(self) -> str:
        return "MidStreamError"


@frozen
class MalformedChunk:
    """Insert one unparseable `data:` line after `after` content chunks, then carry on."""

    after: int

    @property
    def label(self) -> str:
        return "MalformedChunk"


@frozen
class NoDone:
    """Send the finish reason but end the stream without `[DONE]` / `message_stop`."""

    @property
    def label(self) -> str:
        return "NoDone"


@frozen
class DropAfterFinish:
    """Send the whole answer with its finish reason and usage, then drop the connection instead
    of ending the body (no `[DONE]` / `message_stop`, no chunked terminator)."""

    @property
    def label(self) -> str:
        return "DropAfterFinish"


@frozen
class ErrorAfterFinish:
    """Send the whole answer with its finish reason and usage, then an in-stream error event
    instead of `[DONE]` / `message_stop`, and end the body."""

    status: int = 500

    @property
    def label(self) -> str:
        return "ErrorAfterFinish"


@frozen
class EndWithoutFinish:
    """Stream `chunks` content chunks, then end the body cleanly without any finish reason."""

    chunks: int

    @property
    def label(self) -> str:
        return "EndWithoutFinish"


Fault: TypeAlias = (
    Status
    | Reset
    | Hang
    | SlowFirstByte
    | SlowFirstToken
    | CutAfter
    | StallAfter
    | MidStreamError
    | MalformedChunk
    | NoDone
    | DropAfterFinish
    | ErrorAfterFinish
    | EndWithoutFinish
)


class FaultPlan:
    """Which fault each request gets: queue first, then seeded random faults, then `default`.

    `random_faults` is a list of `(probability, fault)`; one uniform draw per request (taken only
    once the queue is empty) walks the cumulative probabilities, so a given seed reproduces the
    same sequence for the same number of requests.
    """

    def __init__(
        self,
        faults: Iterable[Fault | None] = (),
        *,
        default: Fault | None = None,
        random_faults: Sequence[tuple[float, Fault]] = (),
        seed: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault | None] = deque()
        self._default: Fault | None = None
        self._random: tuple[tuple[float, Fault], ...] = ()
        self._rng = random.Random(seed)
        self.replace(faults, default=default, random_faults=random_faults, seed=seed)

    @classmethod
    def always(cls, fault: Fault) -> FaultPlan:
        return cls(default=fault)

    def replace(
        self,
        faults: Iterable[Fault | None] = (),
        *,
        default: Fault | None = None,
        random_faults: Sequence[tuple[float, Fault]] = (),
        seed: int = 0,
    ) -> None:
        """Swap the whole plan in place (e.g. flip a failing provider to healthy)."""
        total = sum(p for p, _ in random_faults)
        if any(p < 0 for p, _ in random_faults) or total > 1.0 + 1e-9:
            raise ValueError("random fault probabilities must be >= 0 and sum to at most 1")
        with self._lock:
            self._queue = deque(faults)
            self._default = default
            self._random = tuple(random_faults)
            self._rng = random.Random(seed)

    def push(self, *faults: Fault | None) -> None:
        """Append to the queue; each entry is used by exactly one later request."""
        with self._lock:
            self._queue.extend(faults)

    def set_default(self, fault: Fault | None) -> None:
        with self._lock:
            self._default = fault

    def heal(self) -> None:
        """No queue, no random faults, no default: every later request is healthy."""
        self.replace()

    @property
    def pending(self) -> tuple[Fault | None, ...]:
        with self._lock:
            return tuple(self._queue)

    def next_fault(self) -> Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._random:
                draw = self._rng.random()
                cumulative = 0.0
                for probability, fault in self._random:
                    cumulative += probability
                    if draw < cumulative:
                        return fault
            return self._default


# --- Ready-made provider error bodies ----------------------------------------------------------


def openai_rate_limit(
    *, retry_after: float | None = 1.0, model: str = "gpt-4o", retry_after_ms: int | None = None
) -> Status:
    message = (
        f"Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 1s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    return Status(
        429,
        openai_error(message, "requests", code="rate_limit_exceeded"),
        headers={"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"},
        retry_after=retry_after,
        retry_after_ms=retry_after_ms,
    )


def openai_insufficient_quota() -> Status:
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors."
    )
    return Status(429, openai_error(message, "insufficient_quota", code="insufficient_quota"))


def codex_usage_limit(
    *, resets_in_seconds: int = 3600, plan_type: str = "plus", resets_at: int | None = None
) -> Status:
    """ChatGPT/Codex backend: a quota window, not a transient rate limit."""
    at = resets_at if resets_at is not None else int(time.time()) + resets_in_seconds
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan_type,
            "resets_at": at,
            "resets_in_seconds": resets_in_seconds,
        }
    }
    return Status(429, body)


def zai_http_500(*, as_json: bool = False) -> Status:
    """Z.ai's intermittent 500: plain text `HTTP 500 - ...`, or that message in its JSON shape."""
    message = "HTTP 500 - Internal Server Error: the model service failed to respond"
    if as_json:
        return Status(500, {"error": {"code": "500", "message": message}})
    return Status(500, message)


def anthropic_overloaded() -> Status:
    return Status(529, anthropic_error("overloaded_error", "Overloaded"))


def anthropic_rate_limit(*, retry_after: float | None = 1.0) -> Status:
    message = (
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
    )
    return Status(
        429,
        anthropic_error("rate_limit_error", message),
        headers={"anthropic-ratelimit-requests-remaining": "0"},
        retry_after=retry_after,
    )


def minimax_usage_limit(*, message: str = "usage limit exceeded (2056)") -> Status:
    """MiniMax's Anthropic-compatible endpoint: plan cap 2056 as an Anthropic rate_limit_error."""
    return Status(429, anthropic_error("rate_limit_error", message))


def minimax_content_filter() -> Status:
    return Status(400, anthropic_error("invalid_request_error", "input new_sensitive (1026)"))


def openai_context_length(*, tokens: int = 140_000, maximum: int = 128_000) -> Status:
    message = (
        f"This model's maximum context length is {maximum} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    return Status(
        400,
        openai_error(
            message, "invalid_request_error", param="messages", code="context_length_exceeded"
        ),
    )


def anthropic_prompt_too_long(*, tokens: int = 210_000, maximum: int = 200_000) -> Status:
    message = f"prompt is too long: {tokens} tokens > {maximum} maximum"
    return Status(400, anthropic_error("invalid_request_error", message))


def openai_content_filter() -> Status:
    """Azure-style prompt filter: HTTP 400 with code `content_filter`."""
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry."
    )
    body = openai_error(message, None, param="prompt", code="content_filter")
    body["error"]["status"] = 400
    return Status(400, body)


def unauthorized(fmt: ProviderFormat | str) -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return Status(401, anthropic_error("authentication_error", "invalid x-api-key"))
    return Status(
        401,
        openai_error(
            "Incorrect API key provided: sk-sim***. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            code="invalid_api_key",
        ),
    )


def model_not_found(fmt: ProviderFormat | str, model: str) -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return Status(404, anthropic_error("not_found_error", f"model: {model}"))
    message = f"The model `{model}` does not exist or you do not have access to it."
    return Status(404, openai_error(message, "invalid_request_error", code="model_not_found"))


def invalid_request(fmt: ProviderFormat | str, message: str = "Invalid request") -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return Status(400, anthropic_error("invalid_request_error", message))
    return Status(400, openai_error(message, "invalid_request_error"))


def context_length(fmt: ProviderFormat | str) -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return anthropic_prompt_too_long()
    return openai_context_length()


def content_filter(fmt: ProviderFormat | str) -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return minimax_content_filter()
    return openai_content_filter()


def rate_limit(fmt: ProviderFormat | str, *, retry_after: float | None = 1.0) -> Status:
    if ProviderFormat(fmt) is ProviderFormat.ANTHROPIC:
        return anthropic_rate_limit(retry_after=retry_after)
    return openai_rate_limit(retry_after=retry_after)
