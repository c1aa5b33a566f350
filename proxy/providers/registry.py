"""The transports of one app, one per wire format, sharing the app's single client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp

from proxy.config import ProviderConfig
from proxy.providers.anthropic import AnthropicDialect
from proxy.providers.base import EventBatch, UpstreamRequest
from proxy.providers.codex import CodexTransport
from proxy.providers.http import HttpTransport
from proxy.providers.openai import OpenAIDialect
from proxy.types import ProviderFormat, UpstreamReply


class Transport(Protocol):
    """What the fallback loop calls: one request in, a whole `UpstreamReply` or batches of neutral
    events out."""

    async def complete(self, request: UpstreamRequest) -> UpstreamReply: ...

    def stream(self, request: UpstreamRequest) -> AsyncIterator[EventBatch]: ...


class Upstreams:
    def __init__(self, session: aiohttp.ClientSession, max_answer_bytes: int) -> None:
        """`session` comes from `proxy.security.outgoing`; `max_answer_bytes` bounds every
        upstream body read whole."""
        self._transports: dict[ProviderFormat, Transport] = {
            ProviderFormat.OPENAI: HttpTransport(session, OpenAIDialect(), max_answer_bytes),
            ProviderFormat.ANTHROPIC: HttpTransport(session, AnthropicDialect(), max_answer_bytes),
            ProviderFormat.CODEX: CodexTransport(session, max_answer_bytes),
        }

    def has(self, provider: ProviderConfig) -> bool:
        return provider.format in self._transports

    def transport(self, provider: ProviderConfig) -> Transport:
        return self._transports[provider.format]
