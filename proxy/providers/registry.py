"""The transports of one app, one per wire format, sharing the app's single client session."""

from __future__ import annotations

import aiohttp

from proxy.config import ProviderConfig
from proxy.providers.anthropic import AnthropicDialect
from proxy.providers.http import HttpTransport
from proxy.providers.openai import OpenAIDialect
from proxy.types import WireFormat


class Upstreams:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._transports: dict[WireFormat, HttpTransport] = {
            WireFormat.OPENAI: HttpTransport(session, OpenAIDialect()),
            WireFormat.ANTHROPIC: HttpTransport(session, AnthropicDialect()),
        }

    def has(self, provider: ProviderConfig) -> bool:
        return provider.format in self._transports

    def transport(self, provider: ProviderConfig) -> HttpTransport:
        return self._transports[provider.format]
