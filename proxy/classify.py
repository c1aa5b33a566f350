"""Upstream failure classification: status + body (+ headers) -> ErrorClass.

The only reader of upstream error wording (`error_message` too), so the fallback loop never looks
at message text. A stream's error event that names its status by a type or code is paired with
that status by its decoder, as the wire format pairs them (`stream_anthropic.ERROR_TYPE_STATUS`,
`stream_responses.ERROR_CODE_STATUS`); everything else about it is classified here.
Wording and status quirks are the tables below (`BODY_PATTERNS`, `EMBEDDED_STATUS`,
`ZAI_CODE_STATUS`, `STATUS_CLASSES`); a few quirks of shape are code: the retry-after fields of
a body (`retry_after_seconds`), MiniMax's `base_resp` message (`error_message`), and the rule
that a 5xx stays a server error whatever its text says. Which 2xx bodies are errors is each
provider dialect's `body_error`; an error inside a stream comes here through
`providers.base.fault_error`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import orjson

from proxy.frozen import frozen
from proxy.types import ErrorClass, JSONObject

# Body wording that overrides what the status alone would say. Checked in order, on the
# lower-cased body text; the first match wins.
BODY_PATTERNS: tuple[tuple[re.Pattern[str], ErrorClass], ...] = (
    # Quota / billing: hitting these again on every request is pointless until the reset.
    (
        re.compile(
            r"usage_limit_reached|insufficient_quota|usage limit exceeded|\(2056\)"
            r"|billing|credit balance is too low|exceeded your current quota"
        ),
        ErrorClass.QUOTA_EXHAUSTED,
    ),
    (
        re.compile(
            r"context_length_exceeded|context length|context window|maximum context"
            r"|prompt is too long|too many tokens|reduce the length"
        ),
        ErrorClass.CONTEXT_LENGTH,
    ),
    (
        re.compile(
            r"content_filter|content filter|content_policy|content policy|safety system"
            r"|sensitive content"
        ),
        ErrorClass.CONTENT_FILTER,
    ),
    (
        re.compile(r"model_not_found|model not found|does not exist|no such model|unknown model"),
        ErrorClass.NOT_FOUND,
    ),
    (re.compile(r"rate limit|rate_limit|too many requests"), ErrorClass.RATE_LIMITED),
    (re.compile(r"overloaded"), ErrorClass.SERVER_ERROR),
)

# Providers that answer 200 or 400 but put the real status into the text: Z.ai's `HTTP 500 - ...`.
EMBEDDED_STATUS = re.compile(r"\bhttp[ /]?(\d{3})\b|\bstatus(?: code)?[ :=]+(\d{3})\b")

# Z.ai/Zhipu business codes (`{"error": {"code": "1302", ...}}`) inside a stream -> the HTTP
# status they stand for, so that an in-stream error is classified like the response it means.
ZAI_CODE_STATUS: Mapping[str, int] = {
    **dict.fromkeys(("1000", "1001", "1002", "1003", "1004"), 401),
    **dict.fromkeys(("1113", "1304", "1308", "1309", "1310"), 402),
    **dict.fromkeys(("1210", "1213", "1214", "1215", "1301"), 400),
    "1211": 404,
    "1261": 413,
    **dict.fromkeys(("1302", "1303", "1305", "1312"), 429),
    **dict.fromkeys(("1230", "1234"), 500),
}
_HTTP_STATUS = re.compile(r"^[1-5]\d\d$")

STATUS_CLASSES: Mapping[int, ErrorClass] = {
    400: ErrorClass.INVALID_REQUEST,
    401: ErrorClass.AUTH,
    402: ErrorClass.QUOTA_EXHAUSTED,
    403: ErrorClass.AUTH,
    404: ErrorClass.NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.SERVER_ERROR,
    413: ErrorClass.CONTEXT_LENGTH,
    422: ErrorClass.INVALID_REQUEST,
    429: ErrorClass.RATE_LIMITED,
}

# Classes that move the request to the next target. INVALID_REQUEST is the client's fault and
# goes back to it unchanged; CONTENT_FILTER is an answer, not a failure.
FALLBACK_CLASSES: frozenset[ErrorClass] = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.QUOTA_EXHAUSTED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECTION,
        ErrorClass.CONTEXT_LENGTH,
        ErrorClass.AUTH,
        ErrorClass.NOT_FOUND,
        ErrorClass.UNAVAILABLE,
        ErrorClass.STREAM_CUT,
        ErrorClass.BAD_RESPONSE,
    }
)


@frozen
class Classification:
    error_class: ErrorClass
    status: int | None
    message: str
    retry_after: float | None = None
    body: JSONObject | None = None


def fault_status(body: JSONObject) -> int | None:
    """The HTTP status an in-stream error body stands for when its format pairs none with it
    (OpenAI-style error chunks): a numeric `code` or `status`, a Z.ai business code, or a status
    named in the message."""
    error = body.get("error")
    if not isinstance(error, Mapping):
        error = {"message": str(error)}
    code = error.get("code", error.get("status"))
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    if isinstance(code, str):
        if _HTTP_STATUS.match(code):
            return int(code)
        if code in ZAI_CODE_STATUS:
            return ZAI_CODE_STATUS[code]
    message = error.get("message")
    if isinstance(message, str):
        embedded = EMBEDDED_STATUS.search(message.lower())
        if embedded:
            return int(embedded.group(1) or embedded.group(2))
    return None


def classify_status(status: int) -> ErrorClass:
    if 300 <= status < 400:  # redirects are never followed: the provider URL is wrong
        return ErrorClass.BAD_RESPONSE
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if status >= 500:
        return ErrorClass.SERVER_ERROR
    return ErrorClass.INVALID_REQUEST


def classify(status: int, raw_body: bytes, headers: Mapping[str, str]) -> Classification:
    """Classify one upstream error response."""
    body = _parse_json(raw_body)
    message = error_message(status, body, raw_body)
    lowered = raw_body[:8192].decode("utf-8", "replace").lower()
    effective_status = status
    embedded = EMBEDDED_STATUS.search(lowered)
    if embedded and status < 500:
        code = int(embedded.group(1) or embedded.group(2))
        if code >= 500:
            effective_status = code
    error_class = classify_status(effective_status)
    for pattern, pattern_class in BODY_PATTERNS:
        if pattern.search(lowered):
            # A 5xx stays a server error even if its text mentions e.g. "context".
            if effective_status >= 500 and pattern_class in (
                ErrorClass.CONTEXT_LENGTH,
                ErrorClass.CONTENT_FILTER,
                ErrorClass.NOT_FOUND,
            ):
                break
            error_class = pattern_class
            break
    return Classification(
        error_class=error_class,
        status=status,
        message=message,
        retry_after=retry_after_seconds(headers, body),
        body=body,
    )


def retry_after_seconds(headers: Mapping[str, str], body: JSONObject | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date), or a body
    field like ChatGPT's `resets_in_seconds`."""
    value = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if body is not None:
        error = body.get("error")
        if isinstance(error, dict):
            for key in ("resets_in_seconds", "reset_seconds", "retry_after"):
                reset = error.get(key)
                if isinstance(reset, int | float) and reset >= 0:
                    return float(reset)
    return None


def _parse_json(raw: bytes) -> JSONObject | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def error_message(status: int, body: JSONObject | None, raw: bytes) -> str:
    """The human-readable message of an upstream error body in any common shape: OpenAI's and
    Anthropic's `error.message`, a bare `error` string, vLLM/Mistral's `message`, FastAPI's
    `detail` (a list of validation errors too), MiniMax's `base_resp`; a body that is not JSON
    as its text; else the status."""
    if body is None:
        return raw[:500].decode("utf-8", "replace").strip() or f"upstream returned HTTP {status}"
    error = body.get("error")
    if isinstance(error, dict):
        for key in ("message", "msg", "detail"):
            if isinstance(error.get(key), str) and error[key]:
                return str(error[key])
    if isinstance(error, str) and error:
        return error
    for key in ("message", "detail", "msg"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:  # FastAPI validation errors
            return "; ".join(
                str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                for item in value
            )
    base = body.get("base_resp")
    if isinstance(base, dict) and isinstance(base.get("status_msg"), str):
        return f"{base['status_msg']} ({base.get('status_code')})"
    return f"upstream returned HTTP {status}"
