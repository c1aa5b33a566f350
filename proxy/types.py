"""Typed values that travel inside llmproxy.

Wire payloads (client and provider JSON) stay plain dicts at the edges; everything the router,
the fallback loop and the stream state machines exchange is one of these frozen values.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypeAlias

from proxy.frozen import field, frozen

JSONObject: TypeAlias = dict[str, Any]


class ClientAPI(StrEnum):
    """An API llmproxy serves to its clients (`proxy.client_dialects` has one class each)."""

    OPENAI = "openai"  # chat completions
    ANTHROPIC = "anthropic"  # Messages
    RESPONSES = "responses"  # the Responses API


class ProviderFormat(StrEnum):
    """A wire format llmproxy speaks to upstream providers (`proxy.providers` has one transport
    each). Shared names with `ClientAPI` mean the same wire format seen from the other side."""

    OPENAI = "openai"  # chat completions, every OpenAI-compatible service
    ANTHROPIC = "anthropic"  # Messages
    CODEX = "codex"  # the ChatGPT backend's Responses endpoint, with a subscription sign-in


@frozen
class Target:
    """One (provider, model) pair: the unit that routing orders and fallback tries."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider},{self.model}"


Chain: TypeAlias = tuple[Target, ...]


class Scenario(StrEnum):
    """The named routes of `[router]`; the detected one supplies the chain's middle part."""

    IMAGE = "image"
    WEB_SEARCH = "web_search"
    LONG_CONTEXT = "long_context"
    THINK = "think"
    BACKGROUND = "background"
    DEFAULT = "default"


@frozen
class RequestSummary:
    """What routing needs to know about a request, in either client format."""

    model: str
    has_images: bool = False
    has_web_search: bool = False
    wants_reasoning: bool = False
    has_tools: bool = False
    token_estimate: int = 0
    max_output_tokens: int | None = None
    last_user_text: str = ""


@frozen
class SkippedTarget:
    target: Target
    reason: str


@frozen
class Decision:
    """The outcome of routing: the chain to walk, and why.

    `chain` is already de-duplicated and in walking order: the decision's own targets (an explicit
    `provider,model` or a mapping's `to`), then the detected scenario's chain, then `default`.
    `scenario` is the detected scenario (DEFAULT when none was detected).
    """

    scenario: Scenario
    reason: str
    chain: Chain
    explicit: bool = False
    mapping: str | None = None
    skipped: tuple[SkippedTarget, ...] = ()
    """Targets left out of `chain` because they cannot serve this request (capabilities)."""
    rule: str | None = None
    """The keyword rule whose targets head the chain (the best matching one that can serve)."""
    unfit: tuple[SkippedTarget, ...] = ()
    """When no target passed the capability checks, the chain is kept whole and the findings
    are here instead of in `skipped`."""
    affinity: str | None = None
    """What prompt-cache affinity decided and why (`proxy.affinity`); None when not applied."""
    sticky: Target | None = None
    """The conversation's previous target, moved to the head of `chain` by affinity."""
    route: str = "default"
    """Which route decided the head of `chain`: "explicit", "mapping 'glob'", "keyword rule
    'name'", a scenario ("think") or "default". Affinity keeps a conversation's target only
    while its turns take the same route."""
    route_targets: Chain = ()
    """The targets that route itself names (before capability filtering), without the chains
    appended behind it: affinity chooses only among these."""


class ErrorClass(StrEnum):
    """How an upstream failure is classified; drives retry, fallback and health."""

    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection_error"
    CONTEXT_LENGTH = "context_length_exceeded"
    CONTENT_FILTER = "content_filter"
    AUTH = "auth_error"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    UNAVAILABLE = "unavailable"
    STREAM_CUT = "stream_cut"
    BAD_RESPONSE = "bad_response"


@frozen
class Attempt:
    """One try of one target, as recorded in the attempts header and error bodies.

    A streamed try is recorded once, when it ends: `ok` when it reached its finish, its error
    class when it was cut. `streaming` marks a try that had not ended when the record was read
    (a stream's commit-point headers; a stream closed before its end)."""

    target: Target
    status: int | None
    error_class: ErrorClass | None
    elapsed_ms: float
    detail: str = ""
    streaming: bool = False

    @property
    def ok(self) -> bool:
        return self.error_class is None and not self.streaming

    @property
    def outcome(self) -> str:
        if self.streaming:
            return STREAMING
        if self.error_class is None:
            return "ok"
        if self.status is not None:
            return str(self.status)
        return self.error_class.value

    def to_json(self) -> JSONObject:
        entry: JSONObject = {
            "target": str(self.target),
            "status": self.status,
            "error_class": self.error_class.value if self.error_class else None,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "detail": self.detail,
        }
        if self.streaming:
            entry[STREAMING] = True
        return entry


STREAMING = "streaming"
"""The outcome of a try still streaming when it was reported."""


def attempts_header(attempts: tuple[Attempt, ...] | list[Attempt]) -> str:
    """`openai-codex,gpt-5.2=429;zai,glm-5=ok`: what `x-llmproxy-attempts` carries."""
    return ";".join(f"{a.target}={a.outcome}" for a in attempts)


ATTEMPT_DETAILS = "x-llmproxy-attempt-details"
# The other headers of llmproxy's own, here so that a client of the daemon reads them without
# loading the modules that act on them (proxy.affinity, proxy.conversation).
AFFINITY_HEADER = "x-llmproxy-affinity"
"""Response header saying what affinity decided for the request (`Decision.affinity`)."""
SESSION_HEADER = "x-llmproxy-session"
"""Request header naming the conversation (`proxy.conversation`)."""


def attempt_details(attempts: tuple[Attempt, ...] | list[Attempt]) -> str:
    """Every attempt in full, as one line of ASCII JSON (a header value or an SSE comment)."""
    return json.dumps([a.to_json() for a in attempts], ensure_ascii=True)


# --- The common stream model -------------------------------------------------------------------
# Provider adapters turn upstream SSE into these events; client encoders turn them into the
# client's SSE dialect. Block boundaries are implied by changes of event kind, so an adapter never
# has to know how the client frames blocks.


class StopReason(StrEnum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    TOOL_USE = "tool_use"
    STOP_SEQUENCE = "stop_sequence"
    CONTENT_FILTER = "content_filter"
    PAUSE_TURN = "pause_turn"


@frozen
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@frozen
class MessageStart:
    """First event of every upstream stream. `usage` carries input tokens when known up front."""

    id: str
    model: str
    usage: Usage = field(default_factory=Usage)


@frozen
class TextDelta:
    text: str


@frozen
class RefusalDelta(TextDelta):
    """The model declining to answer (chat `refusal`, a Responses `refusal` part). It is what the
    model said, so it is a TextDelta: dialects with a refusal channel render it there, the
    others (Anthropic, the CLI, failover's record of what was said) as text."""


@frozen
class ReasoningDelta:
    """Chain of thought: Anthropic `thinking` or OpenAI-compatible `reasoning_content`."""

    text: str


@frozen
class ReasoningSignature:
    """Anthropic `signature_delta`: closes the current thinking block's integrity check."""

    signature: str


@frozen
class RedactedReasoning:
    data: str


@frozen
class ToolCallStart:
    """A new tool call. `index` counts tool calls within the message, from 0."""

    index: int
    id: str
    name: str


@frozen
class ToolCallDelta:
    """A raw fragment of the JSON arguments of call `index`, never re-encoded."""

    index: int
    arguments: str


@frozen
class CustomToolCall:
    """A whole call to a custom (free-form) tool, the Responses API's `custom_tool_call`:
    `input` is a raw string, not JSON arguments. It shares the tool-call `index` count.
    Dialects without custom tools see a function call with the arguments `{"input": ...}`
    (`responses_tools.function_form`)."""

    index: int
    id: str
    name: str
    input: str


@frozen
class UsageUpdate:
    """Cumulative usage so far for this upstream attempt (later updates replace earlier)."""

    usage: Usage


@frozen
class Finish:
    """The upstream said it is done. Without it, an ending stream is a cut stream."""

    reason: StopReason
    stop_sequence: str | None = None


StreamEvent: TypeAlias = (
    MessageStart
    | TextDelta
    | RefusalDelta
    | ReasoningDelta
    | ReasoningSignature
    | RedactedReasoning
    | ToolCallStart
    | ToolCallDelta
    | CustomToolCall
    | UsageUpdate
    | Finish
)


@frozen
class UpstreamFault:
    """An error the upstream reported inside its stream (an `error` event, an error chunk, a
    failed response), as its decoder read it: `status` is the HTTP status the error's type or
    code stands for, when the wire format says. Not classified here (the provider layer does
    that), and never sent to a client."""

    status: int | None
    body: JSONObject


Decoded: TypeAlias = StreamEvent | UpstreamFault
"""What a stream decoder reports: neutral events, or the upstream's own error."""


@frozen
class UpstreamReply:
    """A whole (non-streaming) upstream answer: the provider's own JSON `body`, or, from a
    provider that only streams (codex), `body` None and the `events` its stream carried. A
    client of the body's own wire format gets the body as it is; every other client gets the
    events, decoded from the body when there is one, rendered by its API."""

    body: JSONObject | None
    events: tuple[StreamEvent, ...] = ()
