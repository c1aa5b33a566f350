"""Small conversions both translation directions share.

Everything here is pure and total: malformed pieces of a client or provider payload turn into a
documented fallback value, never an exception, because one odd block must not sink a request.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from proxy.types import JSONObject, ReasoningDelta, StreamEvent, TextDelta

TEXT_SEPARATOR = "\n\n"
"""Joins text blocks that one dialect keeps apart and the other needs as one string."""

RAW_ARGUMENTS_KEY = "_raw_arguments"
"""Tool arguments that are not a JSON object travel as `{RAW_ARGUMENTS_KEY: "<the text>"}`.

Anthropic needs `tool_use.input` to be an object; a model that emits broken JSON would otherwise
lose its arguments. Wrapped, the client's tool runner rejects the call with an error that shows
the raw text to the model, which can then retry; on the way back to an OpenAI dialect the wrapper
is unwrapped so the original string survives a round trip byte for byte.
"""

TOOL_ERROR_PREFIX = "[tool error] "
"""OpenAI tool messages have no `is_error`; a failed Anthropic tool_result says so in its text."""

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
"""Claude Code's first system block: an Anthropic billing marker with a per-request hash.

Sent to another provider it is noise at the very start of the prompt, and because it changes
on every request it defeats the provider's prefix cache for everything after it.
"""

_TOOL_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(
    r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.S
)


def join_text(parts: list[str]) -> str:
    return TEXT_SEPARATOR.join(p for p in parts if p)


def parse_tool_arguments(arguments: Any) -> JSONObject:
    """OpenAI `function.arguments` (a JSON string) -> Anthropic `tool_use.input` (an object).

    Blank arguments mean "no arguments" (several providers send "" for parameterless tools);
    anything that is not a JSON object is wrapped under RAW_ARGUMENTS_KEY.
    """
    if isinstance(arguments, dict):
        return arguments
    if arguments is None:
        return {}
    text = arguments if isinstance(arguments, str) else str(arguments)
    if not text.strip():
        return {}
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: text}
    if isinstance(parsed, dict):
        return parsed
    return {RAW_ARGUMENTS_KEY: text}


def dump_tool_input(tool_input: Any) -> str:
    """Anthropic `tool_use.input` -> OpenAI `function.arguments` (compact JSON text)."""
    if (
        isinstance(tool_input, dict)
        and len(tool_input) == 1
        and isinstance(tool_input.get(RAW_ARGUMENTS_KEY), str)
    ):
        return str(tool_input[RAW_ARGUMENTS_KEY])
    if tool_input is None:
        return "{}"
    return orjson.dumps(tool_input).decode()


def anthropic_tool_id(tool_id: Any, fallback: str) -> str:
    """A tool call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`).

    OpenAI-compatible providers use ids such as Kimi's `functions.bash:0`; replayed to an
    Anthropic upstream they would be rejected. The mapping is deterministic, so a `tool_use` and
    the `tool_result` answering it always agree.
    """
    if not isinstance(tool_id, str) or not tool_id:
        return fallback
    return _TOOL_ID_INVALID.sub("_", tool_id)


def fallback_tool_id(message_id: str, index: int) -> str:
    """The id of tool call `index` in Anthropic message `message_id` when the upstream gave it
    none: the same whole or streamed."""
    return f"toolu_{message_id.removeprefix('msg_')}_{index}"


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media>;base64,<data>` -> (media type, base64 data); None for any other URL."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group("media") or "application/octet-stream", match.group("data")


_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


class ThinkTags:
    """Splits a leading `<think>...</think>` out of an answer's text, as it streams.

    Some OpenAI-compatible servers (MiniMax, Qwen and DeepSeek-R1 distills behind vLLM without a
    reasoning parser) inline the chain of thought in `content`. Only a block that opens the
    message is taken, so a message that merely talks about the tag is left alone. Text is held
    just long enough to tell: a tag split across chunks is reassembled, and whitespace at the
    end of the reasoning waits for what follows it, so the block's edges are trimmed. An
    unterminated block stays reasoning: a stream has already sent it as such, and a whole
    answer (`split_think_tags`) reads the same.
    """

    __slots__ = ("_buf", "_state")
    _PROBE, _OPENED, _THINK, _AFTER, _PLAIN = range(5)

    def __init__(self) -> None:
        self._state = self._PROBE
        self._buf = ""

    def feed(self, text: str, out: list[StreamEvent]) -> None:
        if self._state == self._PLAIN:
            out.append(TextDelta(text))
        elif self._state == self._PROBE:
            self._buf += text
            head = self._buf.lstrip()
            if head.startswith(_THINK_OPEN):
                self._state = self._OPENED
                self._buf = ""
                self._think(head[len(_THINK_OPEN) :], out)
            elif not _THINK_OPEN.startswith(head):
                self._state = self._PLAIN
                out.append(TextDelta(self._buf))
                self._buf = ""
        elif self._state in (self._OPENED, self._THINK):
            self._think(text, out)
        else:
            self._after(text, out)

    def close(self, out: list[StreamEvent]) -> None:
        held = self._buf if self._state == self._PROBE else self._buf.rstrip()
        if held:
            out.append(TextDelta(held) if self._state == self._PROBE else ReasoningDelta(held))
        self._buf = ""
        self._state = self._PLAIN

    def _think(self, text: str, out: list[StreamEvent]) -> None:
        data = self._buf + text
        if self._state == self._OPENED:  # whitespace opening the block is not reasoning
            data = data.lstrip()
            if not data:
                return
            self._state = self._THINK
        end = data.find(_THINK_CLOSE)
        if end >= 0:
            self._buf = ""
            reasoning = data[:end].rstrip()
            if reasoning:
                out.append(ReasoningDelta(reasoning))
            self._state = self._AFTER
            self._after(data[end + len(_THINK_CLOSE) :], out)
            return
        keep = next(
            (k for k in range(len(_THINK_CLOSE) - 1, 0, -1) if data.endswith(_THINK_CLOSE[:k])), 0
        )
        sendable = data[: len(data) - keep].rstrip()
        self._buf = data[len(sendable) :]
        if sendable:
            out.append(ReasoningDelta(sendable))

    def _after(self, text: str, out: list[StreamEvent]) -> None:
        text = text.lstrip()
        if text:
            self._state = self._PLAIN
            out.append(TextDelta(text))


def split_think_tags(text: str) -> tuple[str, str]:
    """A whole answer's (reasoning, visible text): exactly what `ThinkTags` streams."""
    out: list[StreamEvent] = []
    tags = ThinkTags()
    tags.feed(text, out)
    tags.close(out)
    reasoning = "".join(e.text for e in out if isinstance(e, ReasoningDelta))
    visible = "".join(e.text for e in out if isinstance(e, TextDelta))
    return reasoning, visible


# --- Reasoning effort <-> thinking budget ------------------------------------------------------
# OpenAI-compatible providers take a coarse `reasoning_effort`; Anthropic takes a token budget.
# Budgets below LOW_EFFORT_BELOW map to "low", below HIGH_EFFORT_FROM to "medium", else "high".

LOW_EFFORT_BELOW = 4096
HIGH_EFFORT_FROM = 16384
MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller budgets.

EFFORT_TO_BUDGET: dict[str, int] = {
    "minimal": MIN_THINKING_BUDGET,
    "low": 2048,
    "medium": 8192,
    "high": HIGH_EFFORT_FROM,
    "xhigh": 32768,
    "max": 32768,
}

# OpenAI-compatible servers widely accept only low/medium/high; the finer levels collapse.
ANTHROPIC_EFFORT_TO_OPENAI: dict[str, str] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


def effort_for_budget(budget: int) -> str:
    if budget < LOW_EFFORT_BELOW:
        return "low"
    if budget < HIGH_EFFORT_FROM:
        return "medium"
    return "high"
