"""A client of the daemon, as `llmproxy chat`, `route test --send` and `e2e` use it: request
headers per client dialect, the daemon's SSE read back into neutral events, the attempts it
reports (`x-llmproxy-attempts`, an error body's `error.attempts`, or a final SSE comment), and the
answer in one dialect-free shape.

The client dialects are the upstream dialects, so the provider stream decoders read the daemon's
streams: nothing here re-implements a wire format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from proxy.frozen import frozen
from proxy.sse import SSEDecoder
from proxy.translate.accumulate import MessageAccumulator, ToolCallSnapshot
from proxy.translate.replies import anthropic_reply_events, openai_reply_events
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.translate.stream_openai import OpenAIStreamDecoder
from proxy.types import (
    ATTEMPT_DETAILS,
    STREAMING,
    Attempt,
    ClientAPI,
    JSONObject,
    StopReason,
    StreamEvent,
    UpstreamFault,
    Usage,
)

ATTEMPTS_HEADER = "x-llmproxy-attempts"
# The SSE comment a daemon sends at the end of a stream with the final attempts, each settled:
# the headers went out while the committed try was still `streaming`, and a stream that failed
# over after them has more tries than they say.
ATTEMPTS_TRAILER = b": x-llmproxy-attempts "
DETAILS_TRAILER = b": " + ATTEMPT_DETAILS.encode() + b" "
ANTHROPIC_VERSION = "2023-06-01"


@frozen
class AttemptNote:
    """One try, as a client of the daemon learns it: from `x-llmproxy-attempts`, an error body's
    `error.attempts`, or (in-process) the runner's own `Attempt`."""

    target: str
    outcome: str  # "ok", an HTTP status, or an error class such as "unavailable"
    error_class: str | None = None
    elapsed_ms: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def provider(self) -> str:
        return self.target.partition(",")[0]

    @classmethod
    def from_attempt(cls, attempt: Attempt) -> AttemptNote:
        error_class = attempt.error_class.value if attempt.error_class else None
        return cls(
            str(attempt.target), attempt.outcome, error_class, attempt.elapsed_ms, attempt.detail
        )

    def to_json(self) -> JSONObject:
        """Without `elapsed_ms` when it is unknown: a daemon gives timings to its operator (the
        in-process app) and in error bodies, not in a served answer's attempts header."""
        entry: JSONObject = {
            "target": self.target,
            "outcome": self.outcome,
            "error_class": self.error_class,
            "detail": self.detail,
        }
        if self.elapsed_ms is not None:
            entry["elapsed_ms"] = self.elapsed_ms
        return entry


def path_text(attempts: Sequence[AttemptNote]) -> str:
    """`openai-codex 429 → zai 500 → cerebras`: the providers tried, in order."""
    return " → ".join(a.provider if a.ok else f"{a.provider} {a.outcome}" for a in attempts)


def parse_attempts(value: str) -> tuple[AttemptNote, ...]:
    """`openai-codex,gpt-5.2=429;zai,glm-5=ok` -> notes, in order."""
    notes = []
    for entry in value.split(";"):
        target, sep, outcome = entry.strip().rpartition("=")
        if sep and target:
            notes.append(AttemptNote(target, outcome))
    return tuple(notes)


def attempts_from_error(body: Any) -> tuple[AttemptNote, ...]:
    """The `error.attempts` list of a daemon error body (either dialect), with timings."""
    error = body.get("error") if isinstance(body, dict) else None
    return attempts_from_list(error.get("attempts") if isinstance(error, dict) else None)


def attempts_from_details(value: str) -> tuple[AttemptNote, ...] | None:
    """An `x-llmproxy-attempt-details` value (header or trailer), or None when absent."""
    if not value:
        return None
    try:
        return attempts_from_list(orjson.loads(value))
    except orjson.JSONDecodeError:
        return None


def attempts_from_list(entries: Any) -> tuple[AttemptNote, ...]:
    """Attempts in their JSON form (`Attempt.to_json`) -> notes; odd entries are skipped."""
    notes = []
    for item in entries if isinstance(entries, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("target"), str):
            continue
        status, error_class = item.get("status"), item.get("error_class")
        outcome = "ok" if error_class is None else str(status or error_class)
        if item.get(STREAMING) is True:
            outcome = STREAMING
        elapsed = item.get("elapsed_ms")
        notes.append(
            AttemptNote(
                item["target"],
                outcome,
                error_class if isinstance(error_class, str) else None,
                float(elapsed) if isinstance(elapsed, int | float) else None,
                str(item.get("detail") or ""),
            )
        )
    return tuple(notes)


def error_message(body: Any, raw: bytes = b"") -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return raw[:300].decode("utf-8", "replace").strip() or "no error message"


def served_by(attempts: Sequence[AttemptNote]) -> str | None:
    """The target that answered: the last successful attempt."""
    return next((a.target for a in reversed(attempts) if a.ok), None)


def client_path(fmt: ClientAPI) -> str:
    return "/v1/messages" if fmt is ClientAPI.ANTHROPIC else "/v1/chat/completions"


def client_headers(fmt: ClientAPI, api_key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if fmt is ClientAPI.ANTHROPIC:
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


class StreamReader:
    """A daemon's SSE body (either client dialect) -> neutral stream events.

    The client dialects are the upstream dialects, so the provider decoders read them. An error
    event raises `UpstreamStatusError`. `ended` says whether the proper end (`[DONE]` or
    `message_stop`) arrived; `trailer` holds the attempts a final comment reported, if any.
    """

    def __init__(self, fmt: ClientAPI) -> None:
        self._sse = SSEDecoder()
        self._decoder = (
            AnthropicStreamDecoder() if fmt is ClientAPI.ANTHROPIC else OpenAIStreamDecoder()
        )
        self._line = b""
        self.ended = False
        self.trailer: tuple[AttemptNote, ...] | None = None
        self._details: tuple[AttemptNote, ...] | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        self._scan_comments(chunk)
        return self._decode(self._sse.feed(chunk))

    def close(self) -> list[StreamEvent]:
        self._scan_comments(b"\n")
        return self._decode(self._sse.close()) + self._decoder.close()

    def _decode(self, sse_events: Iterable[Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for sse_event in sse_events:
            if sse_event.data == "[DONE]":
                self.ended = True
                continue
            payload = orjson.loads(sse_event.data)
            if isinstance(payload, dict):
                if (payload.get("type") or sse_event.event) == "message_stop":
                    self.ended = True
                for event in self._decoder.feed(sse_event.event, payload):
                    if isinstance(event, UpstreamFault):
                        # the daemon's own error event; classifying it is the providers' code,
                        # which a client of a healthy daemon never needs to load
                        from proxy.providers.base import fault_error

                        raise fault_error(event, None)
                    out.append(event)
        return out

    def _scan_comments(self, chunk: bytes) -> None:
        if b":" not in chunk and not self._line:
            return
        lines = (self._line + chunk).split(b"\n")
        self._line = lines.pop()
        for line in lines:
            if line.startswith(ATTEMPTS_TRAILER) and self._details is None:
                text = line[len(ATTEMPTS_TRAILER) :].decode("utf-8", "replace").strip()
                self.trailer = parse_attempts(text)
            elif line.startswith(DETAILS_TRAILER):
                text = line[len(DETAILS_TRAILER) :].decode("utf-8", "replace").strip()
                details = attempts_from_details(text)
                self._details = details or None
                self.trailer = self._details or self.trailer


@frozen
class Answer:
    """What came back, in either dialect, streamed or not."""

    text: str
    reasoning: str
    tool_calls: tuple[ToolCallSnapshot, ...]
    stop: StopReason | None
    usage: Usage
    model: str = ""


def answer_from_events(events: Iterable[StreamEvent]) -> Answer:
    accumulator = MessageAccumulator()
    accumulator.extend(events)
    snap = accumulator.snapshot()
    calls = snap.tool_calls + ((snap.open_tool_call,) if snap.open_tool_call else ())
    return Answer(
        snap.text,
        snap.reasoning,
        calls,
        snap.finish.reason if snap.finish else None,
        snap.usage,
        snap.model,
    )


def answer_from_body(body: Any, fmt: ClientAPI) -> Answer:
    """A non-streaming response body (chat.completion or Anthropic message) -> Answer."""
    return answer_from_events(events_from_body(body, fmt))


def events_from_body(body: object, fmt: ClientAPI) -> list[StreamEvent]:
    """A non-streaming answer as the events a stream of it would carry, read as a provider's
    whole reply in the same format is, so one renderer serves both."""
    if not isinstance(body, dict):
        return []
    if fmt is ClientAPI.ANTHROPIC:
        return anthropic_reply_events(body)
    return openai_reply_events(body)
