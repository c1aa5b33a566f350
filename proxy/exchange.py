"""The (client API x provider format) matrix in one place.

Everything that depends on which pair of dialects meet is chosen here: the request translator,
how a whole reply reaches the client (`Pair.answer`) and the error-body translator. Same format
in and out is a pass-through that only replaces `model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proxy.translate import errors_wire, replies, requests, responses_api
from proxy.types import ClientAPI, JSONObject, ProviderFormat, StreamEvent, UpstreamReply

Translate = Callable[[JSONObject, str], JSONObject]
ReadReply = Callable[[JSONObject], Sequence[StreamEvent]]


@dataclass(frozen=True, slots=True)
class Pair:
    client: ClientAPI
    provider: ProviderFormat
    request: Translate

    @property
    def same_format(self) -> bool:
        """The provider speaks the client's own wire format (chat to chat, Messages to
        Messages)."""
        return self.client.value == self.provider.value

    def answer(
        self,
        reply: UpstreamReply,
        model: str,
        request: JSONObject,
        *,
        input_tokens: int = 0,
        created: int | None = None,
    ) -> JSONObject:
        """A whole upstream reply as the client's answer reporting `model`: a same-format body
        as it is, anything else through the neutral events, rendered once by the client's API.
        `request` is the client's (the Responses API echoes it and restores its tools);
        `input_tokens` stands in for usage a provider did not report; `created` (default: now)
        is the answer's timestamp where the client API has one."""
        if reply.body is not None and self.same_format:
            return replies.passthrough_response(reply.body, model)
        events = reply.events if reply.body is None else _READ_REPLY[self.provider](reply.body)
        accumulated = replies.accumulated(events, input_tokens=input_tokens)
        return replies.RENDERERS[self.client](accumulated, model, request, created)


def _anthropic_passthrough(body: JSONObject, model: str) -> JSONObject:
    """Thinking that an OpenAI-format provider produced reaches Anthropic clients unsigned; a
    real Anthropic upstream rejects such history, so it is dropped on the way back up."""
    return requests.drop_unsigned_thinking(requests.passthrough_request(body, model))


_REQUESTS: dict[tuple[ClientAPI, ProviderFormat], Translate] = {
    (ClientAPI.OPENAI, ProviderFormat.OPENAI): requests.passthrough_request,
    (ClientAPI.ANTHROPIC, ProviderFormat.ANTHROPIC): _anthropic_passthrough,
    (ClientAPI.OPENAI, ProviderFormat.ANTHROPIC): requests.openai_to_anthropic_request,
    (ClientAPI.ANTHROPIC, ProviderFormat.OPENAI): requests.anthropic_to_openai_request,
    # The Responses API (Codex CLI, the openai SDK's `responses`) and codex providers (the
    # ChatGPT backend, which speaks Responses): see translate/responses_api.py.
    (ClientAPI.RESPONSES, ProviderFormat.OPENAI): responses_api.responses_to_chat_request,
    (ClientAPI.RESPONSES, ProviderFormat.ANTHROPIC): responses_api.responses_to_anthropic_request,
    (ClientAPI.RESPONSES, ProviderFormat.CODEX): responses_api.responses_to_codex_request,
    (ClientAPI.OPENAI, ProviderFormat.CODEX): responses_api.openai_to_codex_request,
    (ClientAPI.ANTHROPIC, ProviderFormat.CODEX): responses_api.anthropic_to_codex_request,
}
# How a provider format's whole JSON reply is read; codex only streams (its `UpstreamReply` carries
# the events its stream decoder read).
_READ_REPLY: dict[ProviderFormat, ReadReply] = {
    ProviderFormat.OPENAI: replies.openai_reply_events,
    ProviderFormat.ANTHROPIC: replies.anthropic_reply_events,
}
_PAIRS: dict[tuple[ClientAPI, ProviderFormat], Pair] = {
    (client, provider): Pair(client, provider, request)
    for (client, provider), request in _REQUESTS.items()
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
