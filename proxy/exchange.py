"""The (client API x provider format) matrix in one place.

Everything that depends on which pair of dialects meet is chosen here: the request translator,
how a whole reply reaches the client (`Pair.answer`). Same format in and out is a pass-through
that only replaces `model`, unless the reply needs what its events would make of it
(`replies.openai_reply_as_is`). Error bodies are the client dialect's
(`ClientDialect.upstream_error_body`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from proxy.frozen import frozen
from proxy.translate import replies, requests, responses_api
from proxy.types import ClientAPI, JSONObject, ProviderFormat, StreamEvent, UpstreamReply, Usage

Translate = Callable[[JSONObject, str], JSONObject]
ReadReply = Callable[[JSONObject], Sequence[StreamEvent]]
AsIs = Callable[[JSONObject], Usage | None]


class Answer(NamedTuple):
    """A whole answer in the client's format, and the usage it reports (what the request's
    record, cost and metrics count: the same the answer streamed would report)."""

    body: JSONObject
    usage: Usage


@frozen
class Pair:
    client: ClientAPI
    provider: ProviderFormat
    request: Translate
    same_format: bool
    """The provider speaks the client's own wire format (chat to chat, Messages to Messages).
    A field, not a property: it is read on every request, and an enum's `value` is a Python
    call."""

    def answer(
        self,
        reply: UpstreamReply,
        model: str,
        request: JSONObject,
        *,
        input_tokens: int = 0,
        created: int | None = None,
    ) -> Answer:
        """A whole upstream reply as the client's answer reporting `model` (the served one): a
        same-format body as it is where it already says what its events would, anything else
        through the neutral events, rendered once by the client's API. `request` is the
        client's (the Responses API echoes it and restores its tools); `input_tokens` stands in
        for usage a provider did not report; `created` (default: now) is the answer's timestamp
        where the client API has one."""
        body = reply.body
        if body is not None and self.same_format:
            usage = _AS_IS[self.provider](body)
            if usage is not None:
                return Answer(replies.passthrough_response(body, model), usage)
        events = reply.events if body is None else _READ_REPLY[self.provider](body)
        accumulated = replies.accumulated(events, input_tokens=input_tokens)
        rendered = replies.RENDERERS[self.client](accumulated, model, request, created)
        return Answer(rendered, accumulated.usage)


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
# When a same-format reply may pass as it is (then its usage), else None.
_AS_IS: dict[ProviderFormat, AsIs] = {
    ProviderFormat.OPENAI: replies.openai_reply_as_is,
    ProviderFormat.ANTHROPIC: replies.anthropic_reply_as_is,
}
_PAIRS: dict[tuple[ClientAPI, ProviderFormat], Pair] = {
    (client, provider): Pair(client, provider, request, client.value == provider.value)
    for (client, provider), request in _REQUESTS.items()
}


def pair(client: ClientAPI, provider: ProviderFormat) -> Pair | None:
    """The translators for this pair, or None when the provider's format is not served yet."""
    return _PAIRS.get((client, provider))
