"""The transports of one app, one per wire format, sharing the app's single outgoing client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from proxy.config import ProviderConfig
from proxy.providers.anthropic import AnthropicDialect
from proxy.providers.base import EventBatch, UpstreamRequest
from proxy.providers.codex import CodexTransport
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
        self._transports: dict[ProviderFormat, Transport] = {
            ProviderFormat.OPENAI: HttpTransport(client, OpenAIDialect(), max_answer_bytes),
            ProviderFormat.ANTHROPIC: HttpTransport(client, AnthropicDialect(), max_answer_bytes),
            ProviderFormat.CODEX: CodexTransport(client, max_answer_bytes),
        }

    def has(self, provider: ProviderConfig) -> bool:
        return provider.format in self._transports

    def transport(self, provider: ProviderConfig) -> Transport:
        return self._transports[provider.format]
