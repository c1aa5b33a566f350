"""The client APIs llmproxy serves, one class each: OpenAI chat completions, Anthropic Messages
and the Responses API.

A dialect validates its requests, renders its errors (the `type` for a status and the body's
shape: `error_body` for ours, `upstream_error_body` for a provider's), opens its stream encoder
and ends a stream with its own error event. Every error a client sees, ours or an upstream's,
is shaped by one of these: a response body by `error_body` or `upstream_error_body`, the event
that ends a stream by the encoder the dialect opened (`stream_error`). Provider formats (which
upstreams speak) are another matter: see `proxy.exchange`.
"""

from __future__ import annotations

import random
import re
import time
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

from proxy.errors import ClientRequestError
from proxy.translate import errors_wire
from proxy.translate.responses_api import validate_responses_request
from proxy.translate.responses_response import new_response_id
from proxy.translate.stream_anthropic import AnthropicStreamEncoder
from proxy.translate.stream_openai import OpenAIStreamEncoder
from proxy.translate.stream_responses_encode import ResponsesStreamEncoder
from proxy.types import ClientAPI, ErrorClass, JSONObject, ProviderFormat, StreamEvent

MAX_MODEL_NAME = 256
"""Longer than any provider's model id (with a `provider,` prefix); a model name travels into
headers, logs and the health registry, so it is bounded before anything else sees it."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_model_name(model: str) -> None:
    """400 for a model name no provider uses: too long, or holding control characters (CR, LF
    and NUL would break the headers it is echoed in). Checked before any upstream call."""
    if len(model) > MAX_MODEL_NAME:
        raise ClientRequestError(
            f"'model' is {len(model)} characters long; at most {MAX_MODEL_NAME} are accepted",
            param="model",
        )
    if (bad := _CONTROL.search(model)) is not None:
        raise ClientRequestError(
            f"'model' contains the control character U+{ord(bad.group()):04X} at offset "
            f"{bad.start()}",
            param="model",
        )


TAG_KEYS = ("type", "role")
SCHEMA_KEYS = frozenset(
    {"parameters", "input_schema", "schema", "json_schema", "properties", "items", "metadata"}
)
"""Subtrees that are JSON schemas or free-form data, where `type` may be a list."""


def check_tags(value: object, path: str = "") -> None:
    """400 for a `type` or `role` that is not a string, anywhere a translator reads one: they
    are compared with sets of known values, and a list or object there is the client's
    mistake, not the server's."""
    # Every request is walked: the walk that names the path is taken only for a bad one.
    if not _tags_are_strings(value):
        _check_tags_at(value, path)


def _tags_are_strings(value: object) -> bool:
    """What `check_tags` checks, without building a path for every node it passes."""
    stack = [value]
    push = stack.append
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key in TAG_KEYS:
                tag = node.get(key)
                if tag is not None and not isinstance(tag, str):
                    return False
            for key, item in node.items():
                if isinstance(item, (dict, list)) and key not in SCHEMA_KEYS:
                    push(item)
    return True


def _check_tags_at(value: object, path: str) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_tags_at(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key in TAG_KEYS:
            tag = value.get(key)
            if tag is not None and not isinstance(tag, str):
                where = f"{path}.{key}" if path else key
                raise ClientRequestError(f"'{where}' must be a string", param=where)
        for key, item in value.items():
            if key not in SCHEMA_KEYS and isinstance(item, dict | list):
                _check_tags_at(item, f"{path}.{key}" if path else str(key))


class StreamEncoder(Protocol):
    """Neutral events -> one client API's SSE bytes."""

    def encode(self, event: StreamEvent) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, message: str, error_type: str, code: str | None = None) -> bytes:
        """The stream's last bytes when it cannot be completed: the API's own error event."""
        ...


class ClientDialect(ABC):
    """One client API. Instances hold no state; the module's three constants are the only
    ones."""

    format: ClassVar[ClientAPI]

    @abstractmethod
    def error_type(self, status: int) -> str:
        """The error `type` for `status`, from the dialect's one table in `errors_wire`."""

    @abstractmethod
    def error_body(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: JSONObject | None = None,
    ) -> JSONObject: ...

    @abstractmethod
    def upstream_error_body(
        self, status: int, body: JSONObject | None, message: str, provider: ProviderFormat
    ) -> JSONObject:
        """A provider's error as this API tells it: the provider's own body when it already has
        this API's shape, otherwise `message` (the classifier's reading of it) in this API's
        body."""

    @abstractmethod
    def validate(self, body: object, *, generation: bool = True) -> JSONObject:
        """Shape checks that every request must pass before routing; details are left to the
        provider, whose 400 comes back unchanged. `generation=False` is a request that only
        counts tokens."""

    @abstractmethod
    def stream_encoder(self, model: str, body: JSONObject, input_tokens: int) -> StreamEncoder: ...

    def stream_error(
        self,
        encoder: StreamEncoder,
        status: int,
        message: str,
        error_class: ErrorClass | None = None,
    ) -> bytes:
        """The standards-shaped ending of a stream that cannot be completed."""
        code = error_class.value if error_class else None
        return encoder.error(message, self.error_type(status), code)


class _OpenAIShaped(ClientDialect):
    """Errors as `{"error": {"type", "message", "param", "code"}}` (chat and Responses)."""

    def error_type(self, status: int) -> str:
        return errors_wire.openai_error_type_for_status(status)[0]

    def error_body(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: JSONObject | None = None,
        error_type: str | None = None,
    ) -> JSONObject:
        error: JSONObject = {
            "type": error_type or self.error_type(status),
            "message": message,
            "param": param,
            "code": code,
        }
        if extra:
            error.update(extra)
        return {"error": error}

    def upstream_error_body(
        self, status: int, body: JSONObject | None, message: str, provider: ProviderFormat
    ) -> JSONObject:
        """OpenAI-format and codex providers' `{"error": {...}}` as it is; an Anthropic error
        with the OpenAI type and code its error type stands for; anything else (no body, the
        ChatGPT backend's `{"detail": ...}`) with the code OpenAI gives the status."""
        if provider is ProviderFormat.ANTHROPIC:
            if body is not None:
                error_type, code = errors_wire.openai_type_for_anthropic_error(status, body)
                return self.error_body(status, message, code=code, error_type=error_type)
        elif body is not None and isinstance(body.get("error"), dict):
            return body
        code = errors_wire.openai_error_type_for_status(status)[1]
        return self.error_body(status, message, code=code)


class OpenAIChat(_OpenAIShaped):
    """`POST /v1/chat/completions`."""

    format = ClientAPI.OPENAI

    def validate(self, body: object, *, generation: bool = True) -> JSONObject:
        return _messages_request(body, non_empty=True)

    def stream_encoder(self, model: str, body: JSONObject, input_tokens: int) -> StreamEncoder:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return OpenAIStreamEncoder(
            model=model,
            include_usage=include_usage,
            created=int(time.time()),
            completion_id=f"chatcmpl-{_stream_id()}",
            input_tokens_hint=input_tokens,
        )


class AnthropicMessages(ClientDialect):
    """`POST /v1/messages` (and `/v1/messages/count_tokens`, which generates nothing)."""

    format = ClientAPI.ANTHROPIC

    def error_type(self, status: int) -> str:
        return errors_wire.anthropic_error_type_for_status(status)

    def error_body(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: JSONObject | None = None,
    ) -> JSONObject:
        """`{"type": "error", "error": {"type", "message"}}`; Anthropic has no `param`, and a
        `code` is kept as an extra field (the anthropic SDK ignores it)."""
        error: JSONObject = {"type": self.error_type(status), "message": message}
        if code is not None:
            error["code"] = code
        if extra:
            error.update(extra)
        return {"type": "error", "error": error}

    def upstream_error_body(
        self, status: int, body: JSONObject | None, message: str, provider: ProviderFormat
    ) -> JSONObject:
        """An Anthropic-format provider's body as it is; any other provider's error told with
        the Anthropic type for its status."""
        if body is not None and provider is ProviderFormat.ANTHROPIC:
            return body
        return self.error_body(status, message)

    def validate(self, body: object, *, generation: bool = True) -> JSONObject:
        return _messages_request(body, max_tokens=generation)

    def stream_encoder(self, model: str, body: JSONObject, input_tokens: int) -> StreamEncoder:
        return AnthropicStreamEncoder(
            model=model,
            message_id=f"msg_{_stream_id()}",
            input_tokens_hint=input_tokens,
        )


class ResponsesAPI(_OpenAIShaped):
    """`POST /v1/responses` (Codex CLI, the openai SDK's `responses`)."""

    format = ClientAPI.RESPONSES

    def validate(self, body: object, *, generation: bool = True) -> JSONObject:
        if not isinstance(body, dict):
            raise ClientRequestError("request body must be a JSON object")
        body = validate_responses_request(body)
        check_model_name(body["model"])
        check_tags(body)
        return body

    def stream_encoder(self, model: str, body: JSONObject, input_tokens: int) -> StreamEncoder:
        return ResponsesStreamEncoder(
            model, body, new_response_id(), int(time.time()), input_tokens_hint=input_tokens
        )


def _messages_request(
    body: object, *, non_empty: bool = False, max_tokens: bool = False
) -> JSONObject:
    """What chat completions and Messages requests share: a model, a list of role-tagged
    messages (`non_empty`: at least one), a positive `max_tokens` where `max_tokens` says it is
    required, a boolean `stream`."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ClientRequestError(
            "'model' is required and must be a non-empty string", param="model"
        )
    check_model_name(model)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ClientRequestError("'messages' is required and must be an array", param="messages")
    if non_empty and not messages:
        raise ClientRequestError("'messages' must contain at least one message", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ClientRequestError(
                f"messages[{index}] must be an object with a string 'role'",
                param=f"messages[{index}]",
            )
    if max_tokens:
        limit = body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ClientRequestError(
                "'max_tokens' is required and must be a positive integer", param="max_tokens"
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise ClientRequestError("'stream' must be a boolean", param="stream")
    check_tags(body)
    return body


OPENAI = OpenAIChat()
ANTHROPIC = AnthropicMessages()
RESPONSES = ResponsesAPI()


def _stream_id() -> str:
    """24 hex digits naming one streamed answer. Unique, not secret: the process's PRNG costs a
    tenth of `uuid4`, which reads the OS's random source on every stream."""
    return f"{random.getrandbits(96):024x}"
