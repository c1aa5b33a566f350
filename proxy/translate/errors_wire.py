"""Error bodies in each dialect, and upstream error bodies re-told in the client's dialect.

A 400 from a provider must reach the client in the client's own format with the provider's
message intact, so that the client shows the real reason. The HTTP status is the caller's
choice; these functions only build bodies.

    Anthropic: {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}}
    OpenAI:    {"error": {"message": "...", "type": "invalid_request_error",
                          "param": null, "code": null}}
"""

from __future__ import annotations

from typing import Any

from proxy.types import JSONObject

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


def anthropic_error_body(status: int, message: str, *, error_type: str | None = None) -> JSONObject:
    return {
        "type": "error",
        "error": {
            "type": error_type or anthropic_error_type_for_status(status),
            "message": message,
        },
    }


def openai_error_body(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> JSONObject:
    default_type, default_code = openai_error_type_for_status(status)
    return {
        "error": {
            "message": message,
            "type": error_type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def upstream_error_message(status: int, body: Any) -> str:
    """The human-readable message of an upstream error body in any common shape.

    Handles OpenAI (`error.message`), Anthropic (`error.message`), bare `error` strings,
    vLLM/Mistral (`message`), FastAPI (`detail`), and plain text; falls back to the status.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body.strip() or f"upstream returned HTTP {status}"
    if isinstance(body, dict):
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
    return f"upstream returned HTTP {status}"


def openai_error_to_anthropic(status: int, body: Any) -> JSONObject:
    """An OpenAI-dialect upstream error body, told in Anthropic's dialect."""
    return anthropic_error_body(status, upstream_error_message(status, body))


def anthropic_error_to_openai(status: int, body: Any) -> JSONObject:
    """An Anthropic-dialect upstream error body, told in OpenAI's dialect.

    The Anthropic error type, when present, picks the OpenAI type and code (a `billing_error`
    becomes `insufficient_quota`); otherwise the status does.
    """
    error = body.get("error") if isinstance(body, dict) else None
    anthropic_type = error.get("type") if isinstance(error, dict) else None
    if isinstance(anthropic_type, str) and anthropic_type in _OPENAI_TYPE_FOR_ANTHROPIC_TYPE:
        error_type, code = _OPENAI_TYPE_FOR_ANTHROPIC_TYPE[anthropic_type]
    else:
        error_type, code = openai_error_type_for_status(status)
    return openai_error_body(
        status, upstream_error_message(status, body), error_type=error_type, code=code
    )
