"""Offline token estimates for `/v1/messages/count_tokens` and `long_context` routing.

No tokenizer runs here. `count_text` is a linear model over byte-class counts of the UTF-8
text (letters, spaces, digits, punctuation, newlines, non-ASCII characters by script, and three
cheap shape features for indentation and repeated punctuation), fitted against the cl100k_base
BPE by `tests/bench/calibrate_tokens.py`, which also measures the error; the README quotes it.
Every feature is a C-level `bytes.translate` / `bytes.count` pass, most of them over the short
residue left once the letters are deleted: a 45 KB Claude Code request takes about 0.25 ms.
Strings longer than `SAMPLE_ABOVE` characters are estimated from evenly spaced windows, which
keeps a multi-megabyte tool result from costing more than a small one.

The daemon estimates through a `TokenEstimator`, which remembers the estimate of every string
of `REMEMBERED_FROM` characters or more: agents resend the same system prompt, tool schemas and
earlier turns on every request, and hashing a string costs a fraction of estimating it.

`estimate_request_tokens` walks a request body of any `ClientAPI` and never raises on odd
shapes: unknown parts contribute their strings, wrong types contribute nothing. It reads
strings only; base64 payloads (images, documents) are priced from their header or size and
never decoded in full, and only tool schemas and tool-call inputs (plain JSON, never payloads)
are serialised, because that JSON text is what the model reads.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from proxy.frozen import frozen
from proxy.media_tokens import PDF_MIN, audio_tokens, data_url_payload, image_tokens, pdf_tokens
from proxy.types import ClientAPI, JSONObject

ANTHROPIC = ClientAPI.ANTHROPIC

# Feature names and the tokens each unit of a feature costs, fitted by
# `tests/bench/calibrate_tokens.py`. `symbol` and `astral` are pinned rather than fitted: the
# corpora hold too few of them, and one such character is about one (symbol) or two (emoji)
# tokens. A negative weight corrects a count that over-prices merged runs.
FEATURES = (
    "letter",  # ASCII letter
    "space",  # ' '
    "digit",
    "newline",  # '\n' or '\r'
    "tab",
    "punct",  # any other ASCII byte
    "latin2",  # 2-byte char outside Cyrillic: accents split words
    "cyrillic",
    "symbol",  # U+2000-U+2FFF: dashes, arrows, curly quotes
    "cjk",  # kana, CJK ideographs, fullwidth forms
    "hangul",  # Hangul, and U+0800-U+1FFF (Indic, Thai, ...)
    "astral",  # 4-byte chars: emoji
    "indent",  # a newline followed by a space: the indentation is one more token
    "repeat",  # runs like '----' or '====' that BPE merges
    "blank_line",  # '\n\n'
)
WEIGHTS = (
    0.212,
    0.009,
    1.023,
    2.117,
    1.62,
    0.346,
    2.057,
    0.484,
    1.0,
    1.068,
    1.182,
    2.0,
    0.22,
    -0.329,
    -2.011,
)
PINNED = ("symbol", "astral")

_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_DIGITS = b"0123456789"
_ASCII = bytes(range(128))


def _all_but(keep: Iterable[int]) -> bytes:
    kept = frozenset(keep)
    return bytes(b for b in range(256) if b not in kept)


# `bytes.translate(None, delete)` tables: deleting everything but one lead-byte range leaves a
# string whose length is the number of characters in that range.
_NOT_LATIN2 = _all_but(b for b in range(0xC0, 0xE0) if not 0xD0 <= b < 0xD4)
_NOT_CYRILLIC = _all_but(range(0xD0, 0xD4))
_NOT_SYMBOL = _all_but([0xE2])
_NOT_CJK = _all_but([*range(0xE3, 0xEA), 0xEE, 0xEF])
_NOT_HANGUL = _all_but([0xE0, 0xE1, *range(0xEA, 0xEE)])
_NOT_ASTRAL = _all_but(range(0xF0, 0x100))
_REPEATABLE = bytes.maketrans(b"-=*#_~/.", b"RRRRRRRR")

SAMPLE_ABOVE = 32_768
"""Characters above which a string is estimated from `_SAMPLE_WINDOWS` windows."""
_SAMPLE_WINDOWS = 8
_SAMPLE_WINDOW = 4_096


def tokens_for_chars(chars: int) -> int:
    """Output tokens of a stream that reported no usage (a cut stream, a quiet provider): about
    four characters per token. Only the length is known by then, not the text."""
    return (max(chars, 0) + 3) // 4


def count_text(text: str) -> int:
    """Estimated cl100k_base token count of `text`: at least 1 for any non-empty text, and
    never lower for a longer text up to `SAMPLE_ABOVE` characters (all run weights are
    smaller than their base weights, so one more character never removes a token)."""
    if not text:
        return 0
    return max(1, round(_estimate(text)))


def _estimate(text: str) -> float:
    n = len(text)
    if n <= SAMPLE_ABOVE:
        return _features_estimate(text)
    step = (n - _SAMPLE_WINDOW) / (_SAMPLE_WINDOWS - 1)
    windows = (text[int(i * step) : int(i * step) + _SAMPLE_WINDOW] for i in range(_SAMPLE_WINDOWS))
    sample = "".join(windows)
    return _features_estimate(sample) * n / len(sample)


def _features_estimate(text: str) -> float:
    return math.fsum(map(operator.mul, WEIGHTS, features(text)))


def features(text: str) -> tuple[int, ...]:
    """Counts of `FEATURES` in `text` (exposed for the calibration script)."""
    # surrogatepass: JSON may carry lone surrogates ("\ud800"); they must not raise here.
    raw = text.encode("utf-8", "surrogatepass")
    no_letters = raw.translate(None, _LETTERS)
    no_spaces = no_letters.translate(None, b" ")
    rest = no_spaces.translate(None, _DIGITS)
    newlines = rest.count(b"\n") + rest.count(b"\r")
    tabs = rest.count(b"\t")
    high = b"" if text.isascii() else rest.translate(None, _ASCII)
    # A translate call builds its 256-entry table even for no input: ASCII text skips six.
    scripts = _scripts(high) if high else _NO_SCRIPTS
    return (
        len(raw) - len(no_letters),
        len(no_letters) - len(no_spaces),
        len(no_spaces) - len(rest),
        newlines,
        tabs,
        len(rest) - len(high) - newlines - tabs,
        *scripts,
        no_letters.count(b"\n "),
        rest.translate(_REPEATABLE).count(b"RR"),
        rest.count(b"\n\n"),
    )


_NO_SCRIPTS = (0, 0, 0, 0, 0, 0)


def _scripts(high: bytes) -> tuple[int, ...]:
    """Lead bytes per script among the non-ASCII bytes `high`."""
    return (
        len(high.translate(None, _NOT_LATIN2)),
        len(high.translate(None, _NOT_CYRILLIC)),
        len(high.translate(None, _NOT_SYMBOL)),
        len(high.translate(None, _NOT_CJK)),
        len(high.translate(None, _NOT_HANGUL)),
        len(high.translate(None, _NOT_ASTRAL)),
    )


# Framing the model sees around the strings, per OpenAI's published chat-format accounting
# (3 per message plus the role, 3 to prime the reply); the same values stand in for Anthropic's.
PER_MESSAGE = 4
REPLY_PRIMING = 3
PER_TOOL = 8
PER_TOOL_CALL = 8
PER_TOOL_RESULT = 4
ANTHROPIC_TOOL_PROMPT = 346
"""The system prompt Anthropic adds when `tools` is non-empty (its pricing table, Claude 4)."""

_MAX_DEPTH = 16
"""Deeper nesting is read by the flat string walk, so no shape can recurse without bound."""
_OPAQUE_KEYS = frozenset({"data", "signature", "encrypted_content", "cache_control", "file_data"})
"""Keys whose values are payloads or metadata, not text the model reads."""


@frozen
class RequestText:
    """What a request shows the model: its strings, plus tokens priced without a tokenizer
    (framing, images, documents). The calibration script counts `texts` with a real tokenizer."""

    texts: tuple[str, ...]
    fixed_tokens: int


def estimate_request_tokens(body: JSONObject, fmt: ClientAPI) -> int:
    """Estimated input tokens of a request body in the client's dialect `fmt`; never raises."""
    request = request_text(body, fmt)
    return request.fixed_tokens + count_texts(request.texts)


def count_texts(texts: Iterable[str], memo: EstimateMemo | None = None) -> int:
    """`count_text` over many strings at about the cost of one call: short ones are joined,
    strings of `REMEMBERED_FROM` characters or more are estimated one by one, through `memo`
    when there is one."""
    # ASCII and non-ASCII strings are joined apart: one em dash would otherwise widen the whole
    # join to 2 bytes a character and make its UTF-8 encoding a real pass instead of a copy.
    ascii_texts: list[str] = []
    other_texts: list[str] = []
    total = 0.0
    non_empty = 0
    for text in texts:
        non_empty += bool(text)
        if len(text) >= REMEMBERED_FROM:
            total += _estimate(text) if memo is None else memo.estimate(text)
        elif text.isascii():
            ascii_texts.append(text)
        else:
            other_texts.append(text)
    for group in (ascii_texts, other_texts):
        if group:
            total += _features_estimate("".join(group))
    # Every non-empty string is at least one token, which the joined estimate cannot see.
    return max(non_empty, round(total))


REMEMBERED_FROM = 128
"""Characters from which a string is estimated on its own (and remembered by `EstimateMemo`):
below it a string is cheaper to estimate joined with the others than to look up."""
REMEMBERED = 4096
"""Strings whose estimates an `EstimateMemo` keeps (about 100 bytes each: the text is not
kept, only its hash)."""


class EstimateMemo:
    """The estimates of recently seen long strings, keyed by the string's hash, oldest
    forgotten first. Estimating a 30 KB Claude Code request takes about 0.18 ms, looking its
    strings up about 0.02 ms. Two different strings with one 64-bit hash (randomised per
    process) would share an estimate: an estimate, never an answer. Thread-safe: large bodies
    are estimated in worker threads."""

    __slots__ = ("_estimates", "_limit", "_lock")

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._estimates: dict[int, float] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def estimate(self, text: str) -> float:
        key = hash(text)
        known = self._estimates.get(key)
        if known is not None:
            return known
        known = _estimate(text)
        with self._lock:
            self._estimates[key] = known
            if len(self._estimates) > self._limit:
                del self._estimates[next(iter(self._estimates))]
        return known


class TokenEstimator:
    """`estimate_request_tokens`, remembering long strings' estimates: one per daemon."""

    __slots__ = ("_memo",)

    def __init__(self, memo: EstimateMemo | None = None) -> None:
        self._memo = EstimateMemo() if memo is None else memo

    def request_tokens(self, body: JSONObject, fmt: ClientAPI) -> int:
        """Estimated input tokens of `body` in the client's dialect `fmt`; never raises."""
        request = request_text(body, fmt)
        return request.fixed_tokens + count_texts(request.texts, self._memo)


def request_text(body: JSONObject, fmt: ClientAPI) -> RequestText:
    tally = _Tally()
    if isinstance(body, dict):
        if fmt is ANTHROPIC:
            _anthropic_request(body, tally)
        elif fmt is ClientAPI.OPENAI:
            _openai_request(body, tally)
        else:
            _responses_request(body, tally)
    return RequestText(tuple(tally.texts), tally.fixed)


class _Tally:
    """Accumulator for one walk; lives only inside `request_text`."""

    __slots__ = ("fixed", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.fixed = 0

    def text(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.texts.append(value)

    def json(self, value: object) -> None:
        """A schema or tool input: the model reads it as JSON text."""
        if isinstance(value, str):
            self.text(value)
        elif value is not None:
            try:
                self.texts.append(orjson.dumps(value).decode())
            except orjson.JSONEncodeError:  # non-JSON values, or nesting past orjson's limit
                self.strings(value)

    def strings(self, value: object) -> None:
        """Every string leaf of an unknown shape, except opaque payloads."""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not item.startswith("data:"):  # an inline payload, not text
                    self.text(item)
            elif isinstance(item, dict):
                stack.extend(v for k, v in item.items() if k not in _OPAQUE_KEYS)
            elif isinstance(item, list):
                stack.extend(item)


def _dicts(value: object) -> Iterator[dict[str, Any]]:
    """The dict items of a list (a lone dict counts as a list of one); anything else: none."""
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _anthropic_request(body: JSONObject, tally: _Tally) -> None:
    system = body.get("system")
    if system:
        tally.fixed += PER_MESSAGE
        _anthropic_content(system, tally, 0)
    for message in _dicts(body.get("messages")):
        tally.fixed += PER_MESSAGE
        _anthropic_content(message.get("content"), tally, 0)
    tools = list(_dicts(body.get("tools")))
    if tools:
        tally.fixed += ANTHROPIC_TOOL_PROMPT
    for tool in tools:
        tally.fixed += PER_TOOL
        tally.text(tool.get("name"))
        tally.text(tool.get("description"))
        if "input_schema" in tool:
            tally.json(tool["input_schema"])
    tally.fixed += REPLY_PRIMING


def _anthropic_content(content: object, tally: _Tally, depth: int) -> None:
    if isinstance(content, str):
        tally.text(content)
        return
    if depth > _MAX_DEPTH:
        tally.strings(content)
        return
    for block in _dicts(content):
        kind = block.get("type")
        if kind == "text":
            tally.text(block.get("text"))
        elif kind == "thinking":
            tally.text(block.get("thinking"))
        elif kind == "redacted_thinking":
            continue  # encrypted; what it costs is not knowable from here
        elif kind == "image":
            source = block.get("source")
            data = source.get("data") if isinstance(source, dict) else None
            tally.fixed += image_tokens(data if isinstance(data, str) else None, None, ANTHROPIC)
        elif kind == "document":
            tally.text(block.get("title"))
            tally.text(block.get("context"))
            _anthropic_document(block.get("source"), tally, depth)
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            tally.fixed += PER_TOOL_CALL
            tally.text(block.get("name"))
            tally.json(block.get("input"))
        elif isinstance(kind, str) and kind.endswith("tool_result"):
            tally.fixed += PER_TOOL_RESULT
            _anthropic_content(block.get("content"), tally, depth + 1)
        else:
            tally.strings({k: v for k, v in block.items() if k != "type"})


def _anthropic_document(source: object, tally: _Tally, depth: int) -> None:
    if not isinstance(source, dict):
        tally.fixed += PDF_MIN
        return
    kind = source.get("type")
    if kind == "text":
        tally.text(source.get("data"))
    elif kind == "content":
        _anthropic_content(source.get("content"), tally, depth + 1)
    elif kind == "base64" and isinstance(source.get("data"), str):
        tally.fixed += pdf_tokens(source["data"])
    else:
        tally.fixed += PDF_MIN


def _openai_request(body: JSONObject, tally: _Tally) -> None:
    for message in _dicts(body.get("messages")):
        tally.fixed += PER_MESSAGE
        tally.text(message.get("name"))
        _openai_content(message.get("content"), tally)
        tally.text(message.get("refusal"))
        # Not part of the OpenAI schema, but DeepSeek-style clients send reasoning back.
        tally.text(message.get("reasoning_content"))
        calls = list(_dicts(message.get("tool_calls")))
        calls.extend(_dicts(message.get("function_call")))
        for call in calls:
            tally.fixed += PER_TOOL_CALL
            function = call.get("function") or call.get("custom") or call
            if isinstance(function, dict):
                tally.text(function.get("name"))
                tally.json(function.get("arguments", function.get("input")))
    tools = list(_dicts(body.get("tools")))
    tools.extend(_dicts(body.get("functions")))
    for tool in tools:
        _function_tool(tool.get("function") or tool.get("custom") or tool, tally)
    tally.fixed += REPLY_PRIMING


def _function_tool(tool: object, tally: _Tally) -> None:
    tally.fixed += PER_TOOL
    if not isinstance(tool, dict):
        return
    tally.text(tool.get("name"))
    tally.text(tool.get("description"))
    for key in ("parameters", "format"):
        if key in tool:
            tally.json(tool[key])


def _openai_content(content: object, tally: _Tally) -> None:
    if isinstance(content, str):
        tally.text(content)
        return
    for part in _dicts(content):
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            tally.text(part.get("text"))
        elif kind == "refusal":
            tally.text(part.get("refusal"))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            url, detail = image, part.get("detail")
            if isinstance(image, dict):
                url, detail = image.get("url"), image.get("detail")
            tally.fixed += image_tokens(data_url_payload(url), detail, ClientAPI.OPENAI)
        elif kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else None
            tally.fixed += audio_tokens(data if isinstance(data, str) else None)
        elif kind in ("file", "input_file"):
            file = part.get("file")
            data = data_url_payload((file if isinstance(file, dict) else part).get("file_data"))
            tally.fixed += pdf_tokens(data) if data else PDF_MIN
        else:
            tally.strings({k: v for k, v in part.items() if k != "type"})


def _responses_request(body: JSONObject, tally: _Tally) -> None:
    """OpenAI Responses and Codex bodies: `instructions`, `input` items, flat `tools`."""
    if body.get("instructions"):
        tally.fixed += PER_MESSAGE
        tally.text(body.get("instructions"))
    items = body.get("input")
    if isinstance(items, str):
        tally.fixed += PER_MESSAGE
        tally.text(items)
    for item in _dicts(items):
        kind = item.get("type", "message")
        if kind == "message":
            tally.fixed += PER_MESSAGE
            _openai_content(item.get("content"), tally)
        elif kind in ("function_call", "custom_tool_call"):
            tally.fixed += PER_TOOL_CALL
            tally.text(item.get("name"))
            tally.json(item.get("arguments", item.get("input")))
        elif isinstance(kind, str) and kind.endswith("_output"):
            tally.fixed += PER_TOOL_RESULT
            _openai_content(item.get("output"), tally)
        elif kind == "reasoning":
            for part in (*_dicts(item.get("summary")), *_dicts(item.get("content"))):
                tally.text(part.get("text"))
        else:
            tally.strings({k: v for k, v in item.items() if k not in ("type", "id")})
    for tool in _dicts(body.get("tools")):
        if "parameters" in tool or "format" in tool or "description" in tool:
            _function_tool(tool, tally)
        else:  # built-in tools (web_search, local_shell): a name and a few options
            tally.fixed += PER_TOOL
            tally.strings({k: v for k, v in tool.items() if k != "type"})
    tally.fixed += REPLY_PRIMING
