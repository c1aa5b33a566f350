"""The usage a non-streaming answer reports, read back from the client's own format."""

from __future__ import annotations

from proxy.translate.reasons import usage_from_anthropic, usage_from_openai
from proxy.translate.responses_response import usage_from_responses
from proxy.types import ClientAPI, JSONObject, Usage


def usage_of_answer(body: JSONObject, fmt: ClientAPI) -> Usage:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    if fmt == ClientAPI.ANTHROPIC:
        return usage_from_anthropic(usage)
    if fmt == ClientAPI.OPENAI:
        return usage_from_openai(usage)
    return usage_from_responses(usage)
