"""The (client format x provider format) matrix in one place.

Everything that depends on which pair of dialects meet is chosen here: the request translator,
the non-streaming response translator and the error-body translator. Same format in and out is a
pass-through that only replaces `model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.translate import errors_wire, replies, requests, responses_api
from proxy.types import JSONObject, WireFormat

Translate = Callable[[JSONObject, str], JSONObject]


@dataclass(frozen=True, slots=True)
class Pair:
    client: WireFormat
    provider: WireFormat
    request: Translate
    response: Translate

    @property
    def same_format(self) -> bool:
        return self.client == self.provider


def _anthropic_passthrough(body: JSONObject, model: str) -> JSONObject:
    """Thinking that an OpenAI-format provider produced reaches Anthropic clients unsigned; a
    real Anthropic upstream rejects such history, so it is dropped on the way back up."""
    return requests.drop_unsigned_thinking(requests.passthrough_request(body, model))


_TRANSLATORS: dict[tuple[WireFormat, WireFormat], tuple[Translate, Translate]] = {
    # (client, provider): (request translator, response translator)
    (WireFormat.OPENAI, WireFormat.OPENAI): (
        requests.passthrough_request,
        replies.passthrough_response,
    ),
    (WireFormat.ANTHROPIC, WireFormat.ANTHROPIC): (
        _anthropic_passthrough,
        replies.passthrough_response,
    ),
    (WireFormat.OPENAI, WireFormat.ANTHROPIC): (
        requests.openai_to_anthropic_request,
        replies.anthropic_to_openai_response,
    ),
    (WireFormat.ANTHROPIC, WireFormat.OPENAI): (
        requests.anthropic_to_openai_request,
        replies.openai_to_anthropic_response,
    ),
    # The Responses API (Codex CLI, the openai SDK's `responses`) and codex providers (the
    # ChatGPT backend, which speaks Responses): see translate/responses_api.py.
    (WireFormat.RESPONSES, WireFormat.OPENAI): (
        responses_api.responses_to_chat_request,
        responses_api.openai_to_responses_response,
    ),
    (WireFormat.RESPONSES, WireFormat.ANTHROPIC): (
        responses_api.responses_to_anthropic_request,
        responses_api.anthropic_to_responses_response,
    ),
    (WireFormat.RESPONSES, WireFormat.CODEX): (
        responses_api.responses_to_codex_request,
        replies.passthrough_response,
    ),
    (WireFormat.OPENAI, WireFormat.CODEX): (
        responses_api.openai_to_codex_request,
        responses_api.responses_to_chat_response,
    ),
    (WireFormat.ANTHROPIC, WireFormat.CODEX): (
        responses_api.anthropic_to_codex_request,
        responses_api.codex_to_anthropic_response,
    ),
}
_PAIRS: dict[tuple[WireFormat, WireFormat], Pair] = {
    (client, provider): Pair(client, provider, request, response)
    for (client, provider), (request, response) in _TRANSLATORS.items()
}


def pair(client: WireFormat, provider: WireFormat) -> Pair | None:
    """The translators for this pair, or None when the provider's format is not served yet."""
    return _PAIRS.get((client, provider))


def upstream_error_for_client(
    client: WireFormat, provider: WireFormat, status: int, body: JSONObject | None, message: str
) -> JSONObject:
    """An upstream error body re-expressed in the client's dialect (unchanged when they match)."""
    if provider == WireFormat.CODEX and not isinstance((body or {}).get("error"), dict):
        body = None  # the ChatGPT backend's `{"detail": ...}` is no client dialect's shape
    # Responses and codex errors have the OpenAI shape.
    client, provider = _error_shape(client), _error_shape(provider)
    if body is not None and client == provider:
        return body
    if client == WireFormat.ANTHROPIC:
        if body is not None and provider == WireFormat.OPENAI:
            return errors_wire.openai_error_to_anthropic(status, body)
        return errors_wire.anthropic_error_body(status, message)
    if body is not None and provider == WireFormat.ANTHROPIC:
        return errors_wire.anthropic_error_to_openai(status, body)
    return errors_wire.openai_error_body(status, message)


def _error_shape(fmt: WireFormat) -> WireFormat:
    return WireFormat.ANTHROPIC if fmt == WireFormat.ANTHROPIC else WireFormat.OPENAI
