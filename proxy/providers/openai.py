"""The OpenAI chat-completions dialect: every OpenAI-compatible service (Z.ai, Cerebras, Groq,
OpenRouter, DeepSeek, Ollama...) is this class plus configuration."""

from __future__ import annotations

from typing import Any

from proxy.config import ProviderConfig
from proxy.providers.base import StreamDecoder, UpstreamRequest
from proxy.translate.stream_openai import OpenAIStreamDecoder
from proxy.types import JSONObject


class OpenAIDialect:
    def url(self, provider: ProviderConfig) -> str:
        return provider.api_base_url.rstrip("/") + "/chat/completions"

    def headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": _accept(request.stream)}
        if request.provider.api_key:
            headers["authorization"] = f"Bearer {request.provider.api_key}"
        headers.update(request.provider.headers)
        return headers

    def new_decoder(self) -> StreamDecoder:
        return OpenAIStreamDecoder()

    def body_error(self, payload: JSONObject) -> str | None:
        error: Any = payload.get("error")
        if error and "choices" not in payload:
            return str(error.get("message") if isinstance(error, dict) else error)
        choices = payload.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(first, dict) and first.get("finish_reason") == "error":
            # OpenRouter: the provider behind it failed; streamed, the same is a fault.
            return "upstream finished with an error"
        return None


def _accept(stream: bool) -> str:
    return "text/event-stream" if stream else "application/json"
