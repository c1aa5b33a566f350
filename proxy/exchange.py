"""The (client API x provider format) matrix in one place.

Everything that depends on which pair of dialects meet is chosen here: the request translator,
the non-streaming response translator and the error-body translator. Same format in and out is a
pass-through that only replaces `model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.translate import errors_wire, replies, requests, responses_api
from proxy.types import ClientAPI, JSONObject, ProviderFormat

Translate = Callable[[JSONObject, str], JSONObject]


@dataclass(frozen=True, slots=True)
class Pair:
    client: ClientAPI
    provider: ProviderFormat
    request: Translate
    response: Translate

    @property
    def same_format(self) -> bool:
        """The provider speaks the client's own wire format (chat to chat, Messages to
        Messages)."""
        return self.client.value == self.provider.value


def _anthropic_passthrough(body: JSONObject, model: str) -> JSONObject:
    """Thinking that an OpenAI-format provider produced reaches Anthropic clients unsigned; a
    real Anthropic upstream rejects such history, so it is dropped on the way back up."""
    return requests.drop_unsigned_thinking(requests.passthrough_request(body, model))


_TRANSLATORS: dict[tuple[ClientAPI, ProviderFormat], tuple[Translate, Translate]] = {
    # (client, provider): (request translator, response translator)
    (ClientAPI.OPENAI, ProviderFormat.OPENAI): (
        requests.passthrough_request,
        replies.passthrough_response,
    ),
    (ClientAPI.ANTHROPIC, ProviderFormat.ANTHROPIC): (
        _anthropic_passthrough,
        replies.passthrough_response,
    ),
    (ClientAPI.OPENAI, ProviderFormat.ANTHROPIC): (
        requests.openai_to_anthropic_request,
        replies.anthropic_to_openai_response,
    ),
    (ClientAPI.ANTHROPIC, ProviderFormat.OPENAI): (
        requests.anthropic_to_openai_request,
        replies.openai_to_anthropic_response,
    ),
    # The Responses API (Codex CLI, the openai SDK's `responses`) and codex providers (the
    # ChatGPT backend, which speaks Responses): see translate/responses_api.py.
    (ClientAPI.RESPONSES, ProviderFormat.OPENAI): (
        responses_api.responses_to_chat_request,
        responses_api.openai_to_responses_response,
    ),
    (ClientAPI.RESPONSES, ProviderFormat.ANTHROPIC): (
        responses_api.responses_to_anthropic_request,
        responses_api.anthropic_to_responses_response,
    ),
    (ClientAPI.RESPONSES, ProviderFormat.CODEX): (
        responses_api.responses_to_codex_request,
        replies.passthrough_response,
    ),
    (ClientAPI.OPENAI, ProviderFormat.CODEX): (
        responses_api.openai_to_codex_request,
        responses_api.responses_to_chat_response,
    ),
    (ClientAPI.ANTHROPIC, ProviderFormat.CODEX): (
        responses_api.anthropic_to_codex_request,
        responses_api.codex_to_anthropic_response,
    ),
}
_PAIRS: dict[tuple[ClientAPI, ProviderFormat], Pair] = {
    (client, provider): Pair(client, provider, request, response)
    for (client, provider), (request, response) in _TRANSLATORS.items()
}


def pair(client: ClientAPI, provider: ProviderFormat) -> Pair | None:
    """The translators for this pair, or None when the provider's format is not served yet."""
    return _PAIRS.get((client, provider))


def upstream_error_for_client(
    client: ClientAPI, provider: ProviderFormat, status: int, body: JSONObject | None, message: str
) -> JSONObject:
    """An upstream error body re-expressed in the client's dialect (unchanged when they match)."""
    if provider is ProviderFormat.CODEX and not isinstance((body or {}).get("error"), dict):
        body = None  # the ChatGPT backend's `{"detail": ...}` is no client dialect's shape
    # Responses and codex errors have the OpenAI shape.
    anthropic_client = client is ClientAPI.ANTHROPIC
    anthropic_provider = provider is ProviderFormat.ANTHROPIC
    if body is not None and anthropic_client == anthropic_provider:
        return body
    if anthropic_client:
        if body is not None:
            return errors_wire.openai_error_to_anthropic(status, body)
        return errors_wire.anthropic_error_body(status, message)
    if body is not None:
        return errors_wire.anthropic_error_to_openai(status, body)
    return errors_wire.openai_error_body(status, message)
