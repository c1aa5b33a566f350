"""The usage a non-streaming answer reports, read back from the client's own format."""

from __future__ import annotations

from proxy.translate.reasons import usage_from_anthropic, usage_from_openai
from proxy.translate.responses_response import usage_from_responses
from proxy.types import JSONObject, Usage, WireFormat


def usage_of_answer(body: JSONObject, fmt: WireFormat) -> Usage:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    if fmt == WireFormat.ANTHROPIC:
        return usage_from_anthropic(usage)
    if fmt == WireFormat.OPENAI:
        return usage_from_openai(usage)
    return usage_from_responses(usage)
