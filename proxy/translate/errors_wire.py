"""The error `type` (and OpenAI `code`) each client dialect gives a status, or an Anthropic
error type: the tables behind `ClientDialect.error_body` and `upstream_error_body`, which build
every error body a client sees. The bodies look like this:

    Anthropic: {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}}
    OpenAI:    {"error": {"message": "...", "type": "invalid_request_error",
                          "param": null, "code": null}}
"""

from __future__ import annotations

from typing import Any

_ANTHROPIC_TYPE_FOR_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# (type, code) as OpenAI and most OpenAI-compatible servers write them. The openai SDK picks its
# exception class from the status alone; `type` and `code` are for people and for log filters.
_OPENAI_TYPE_FOR_STATUS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_error", None),
    404: ("not_found_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
    504: ("server_error", "timeout"),
    529: ("server_error", "overloaded"),
}

_OPENAI_TYPE_FOR_ANTHROPIC_TYPE: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("not_found_error", "not_found"),
    "conflict_error": ("invalid_request_error", "conflict"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}


def anthropic_error_type_for_status(status: int) -> str:
    if status in _ANTHROPIC_TYPE_FOR_STATUS:
        return _ANTHROPIC_TYPE_FOR_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def openai_error_type_for_status(status: int) -> tuple[str, str | None]:
    """(type, code) for an OpenAI error body with this status."""
    if status in _OPENAI_TYPE_FOR_STATUS:
        return _OPENAI_TYPE_FOR_STATUS[status]
    return ("server_error", None) if status >= 500 else ("invalid_request_error", None)


def openai_type_for_anthropic_error(status: int, body: Any) -> tuple[str, str | None]:
    """(type, code) for an Anthropic-dialect upstream error told in OpenAI's dialect: the
    Anthropic error type picks them when present (a `billing_error` becomes
    `insufficient_quota`), otherwise the status does."""
    error = body.get("error") if isinstance(body, dict) else None
    anthropic_type = error.get("type") if isinstance(error, dict) else None
    if isinstance(anthropic_type, str) and anthropic_type in _OPENAI_TYPE_FOR_ANTHROPIC_TYPE:
        return _OPENAI_TYPE_FOR_ANTHROPIC_TYPE[anthropic_type]
    return openai_error_type_for_status(status)
