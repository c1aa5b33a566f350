"""The transports of one app, one per wire format, sharing the app's single outgoing client.

The codex transport (the ChatGPT sign-in, the Responses stream decoder: 0.4 MB a daemon would
hold) is made, and its modules loaded, only for a config with a codex provider: when a
`FallbackRunner` takes that config (`serving`), before any of its requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from proxy.config import Config, ProviderConfig
from proxy.providers.anthropic import AnthropicDialect
from proxy.providers.base import EventBatch, UpstreamRequest
from proxy.providers.http import HttpTransport
from proxy.providers.openai import OpenAIDialect
from proxy.security.http1 import Client
from proxy.types import ProviderFormat, UpstreamReply


class Transport(Protocol):
    """What the fallback loop calls: one request in, a whole `UpstreamReply` or batches of neutral
    events out."""

    async def complete(self, request: UpstreamRequest) -> UpstreamReply: ...

    def stream(self, request: UpstreamRequest) -> AsyncIterator[EventBatch]: ...


class Upstreams:
    def __init__(self, client: Client, max_answer_bytes: int) -> None:
        """`client` comes from `proxy.security.outgoing`; `max_answer_bytes` bounds every
        upstream body read whole."""
        self._client = client
        self._max_answer_bytes = max_answer_bytes
        self._transports: dict[ProviderFormat, Transport] = {
            ProviderFormat.OPENAI: HttpTransport(client, OpenAIDialect(), max_answer_bytes),
            ProviderFormat.ANTHROPIC: HttpTransport(client, AnthropicDialect(), max_answer_bytes),
        }

    def serving(self, config: Config) -> Upstreams:
        """These transports, with every one `config`'s providers need made now."""
        for provider in config.providers:
            self.transport(provider)
        return self

    def has(self, provider: ProviderConfig) -> bool:
        return provider.format in ProviderFormat

    def transport(self, provider: ProviderConfig) -> Transport:
        transport = self._transports.get(provider.format)
        if transport is None:  # codex, the one format made when first needed
            from proxy.providers.codex import CodexTransport

            transport = CodexTransport(self._client, self._max_answer_bytes)
            self._transports[ProviderFormat.CODEX] = transport
        return transport
