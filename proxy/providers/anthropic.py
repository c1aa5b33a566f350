"""The Anthropic Messages dialect (Anthropic, MiniMax, Kimi and other compatible services)."""

from __future__ import annotations

from proxy.config import ProviderConfig
from proxy.providers.base import StreamDecoder, UpstreamRequest
from proxy.translate.stream_anthropic import AnthropicStreamDecoder
from proxy.types import JSONObject

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicDialect:
    def url(self, provider: ProviderConfig) -> str:
        """`https://api.anthropic.com` and `.../v1` and MiniMax's `.../anthropic` all work."""
        base = provider.api_base_url.rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        if base.endswith("/v1"):
            return base + "/messages"
        return base + "/v1/messages"

    def headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
            "anthropic-version": request.forward_headers.get("anthropic-version")
            or ANTHROPIC_VERSION,
        }
        beta = request.forward_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        if request.provider.api_key:
            headers["x-api-key"] = request.provider.api_key
        headers.update(request.provider.headers)
        return headers

    def new_decoder(self) -> StreamDecoder:
        return AnthropicStreamDecoder()

    def body_error(self, payload: JSONObject) -> str | None:
        if payload.get("type") == "error":
            error = payload.get("error")
            return str(error.get("message") if isinstance(error, dict) else error)
        return None
