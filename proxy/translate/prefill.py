"""A continuation request in the prefill style its OpenAI-compatible provider documents.

The partial answer is already the last message (an assistant message, put there in the client's
format and translated like the rest); this marks it the way the provider's style asks. Pure:
dict in, dict out.
"""

from __future__ import annotations

from proxy.capabilities import PrefillStyle
from proxy.types import JSONObject

_MESSAGE_FLAGS = {PrefillStyle.PREFIX: "prefix", PrefillStyle.PARTIAL: "partial"}


def mark_prefill(body: JSONObject, style: PrefillStyle) -> JSONObject:
    """`body` (OpenAI chat format, ending with the partial assistant answer) in `style`."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return body
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return body
    flag = _MESSAGE_FLAGS.get(style)
    if flag is not None:
        return {**body, "messages": [*messages[:-1], {**last, flag: True}]}
    if style is PrefillStyle.CONTINUE_FINAL_MESSAGE:
        # vLLM and SGLang refuse `continue_final_message` together with a generation prompt.
        return {**body, "continue_final_message": True, "add_generation_prompt": False}
    return body
