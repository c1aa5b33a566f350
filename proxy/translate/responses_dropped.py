"""What translation to and from the Responses API leaves behind on purpose, and why.

The companion of `dropped.py` for the Responses dialect: every top-level request field is
TRANSLATED or DROPPED (with the reason next to it), and `unknown_responses_fields` names the
rest, so a new client field is noticed instead of silently lost. A test runs the captured Codex
requests through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# --- Responses request -> chat completions (and on to Anthropic) -------------------------------

TRANSLATED_RESPONSES_REQUEST: frozenset[str] = frozenset(
    {
        "model",
        "input",  # items -> messages, see responses_request.py
        "instructions",  # -> the leading system message
        "tools",  # function, namespace (flattened) and custom tools; hosted tools dropped
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",  # -> max_tokens
        "temperature",
        "top_p",
        "reasoning",  # effort -> reasoning_effort; `summary` has no counterpart
        "text",  # format -> response_format; `verbosity` has no counterpart
        "user",
        "safety_identifier",
        "stream",
    }
)

DROPPED_RESPONSES_TO_CHAT: frozenset[str] = frozenset(
    {
        "store",  # llmproxy stores no responses, and chat providers keep nothing either
        "include",  # asks for extra output (encrypted reasoning, logprobs) only OpenAI produces
        "prompt_cache_key",  # OpenAI cache routing; strict OpenAI-compatible servers reject it
        "prompt_cache_retention",
        "prompt_cache_options",
        "client_metadata",  # Codex's turn and session ids: telemetry for OpenAI, not the model
        "metadata",  # tags for stored responses
        "service_tier",  # OpenAI's processing tiers mean nothing to another provider
        "truncation",  # server-side context truncation; the proxy sends the whole input
        "stream_options",  # obfuscation padding of the Responses stream
        "top_logprobs",
        "max_tool_calls",  # limits OpenAI-hosted tool calls, which other providers cannot run
        "context_management",  # server-side compaction
        "moderation",
        "access_programs",
        "image",
    }
)

REJECTED_RESPONSES_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        # Both refer to responses stored server-side; llmproxy keeps none, and a chain may move
        # the conversation between providers that never saw the earlier turns.
        "previous_response_id": "llmproxy stores no responses: send the whole conversation "
        "in 'input' (and 'store': false)",
        "conversation": "llmproxy stores no conversations: send the whole conversation in 'input'",
        "prompt": "stored prompt templates live in OpenAI's dashboard; send 'instructions' "
        "and 'input' instead",
        "background": "background responses need a response store, which llmproxy does not keep",
    }
)
"""Fields no provider of a chain can honour: a non-null value is answered with a 400."""

REJECTED_RESPONSES_ITEM_TYPES: Mapping[str, str] = MappingProxyType(
    {
        # Its content is stored by OpenAI, so no other provider can be given it, and leaving it
        # out could strand what refers to it (a tool output without its call).
        "item_reference": "it points at an item stored by OpenAI, and llmproxy stores none: "
        "send the item itself",
        # Computer use needs OpenAI's computer-use model and its `computer_use_preview` tool,
        # which a chat provider does not have: it could neither read the screenshots nor act.
        "computer_call": "computer use runs only on OpenAI's computer-use models: route this "
        "conversation to a codex provider",
        "computer_call_output": "computer use runs only on OpenAI's computer-use models: route "
        "this conversation to a codex provider",
    }
)
"""Input items no chat provider can be given: answered with a 400 that names the type."""

COMPACTION_NOTE = (
    "[llmproxy: the earlier part of this conversation was compacted by OpenAI into an "
    "encrypted summary that only OpenAI can read; it is not available here]"
)
"""What a `compaction` item (Codex remote compaction: the conversation so far, encrypted)
becomes for a chat provider: a note in the system prompt, so the model knows the earlier turns
exist but were not shown, instead of missing them silently. Refusing the request would end a
compacted Codex session on any fallback; the user messages Codex keeps after a compaction
still state the task."""

DROPPED_RESPONSES_ITEM_TYPES: frozenset[str] = frozenset(
    {
        # Reasoning: the summary is not what the model thought, and the encrypted content is
        # readable only by OpenAI. (A codex provider keeps items that carry encrypted content.)
        "reasoning",
        "compaction_summary",
        "compaction_trigger",  # asks OpenAI's servers to compact: nothing a chat provider does
        # Results of OpenAI-hosted tools the chat provider never had.
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",  # its tools join the request's tools (`declared_tools`)
        "program",  # programmatic tool calling runs on OpenAI's servers
        "program_output",
    }
)

RESPONSES_CLIENT_TOOL_TYPES: frozenset[str] = frozenset({"function", "namespace", "custom"})
"""Tools any function-calling provider can serve. Every other type (`web_search`,
`web_search_preview`, `file_search`, `code_interpreter`, `image_generation`, `computer_use*`,
`mcp`, `local_shell`, `shell`, `apply_patch`, `tool_search`) runs on OpenAI's servers or has an
OpenAI-defined schema: it is dropped for chat providers, and a tool_choice naming one falls back
to auto. Codex always declares `web_search`; a codex provider receives it unchanged."""

DROPPED_RESPONSES_TOOL_FIELDS: frozenset[str] = frozenset(
    {
        "strict",  # OpenAI strict-schema mode; other providers reject or ignore it
        "defer_loading",  # tool search; the tool is always offered instead
        "allowed_callers",
        "output_schema",
    }
)

# --- chat completions -> Responses (codex providers) ------------------------------------------

TRANSLATED_CHAT_TO_RESPONSES: frozenset[str] = frozenset(
    {
        "model",
        "messages",  # system/developer -> instructions; the rest -> input items
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "parallel_tool_calls",
        "reasoning_effort",  # -> reasoning.effort (with summary "auto")
        "response_format",  # -> text.format
        "max_tokens",  # -> max_output_tokens (which the ChatGPT backend then refuses)
        "max_completion_tokens",
        "temperature",
        "top_p",
        "user",
        "safety_identifier",
        "stream",
    }
)

DROPPED_CHAT_TO_RESPONSES: frozenset[str] = frozenset(
    {
        "stream_options",  # a Responses stream always ends with the usage
        "stop",  # the Responses API has no stop sequences
        "n",  # one output per response
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "modalities",
        "audio",
        "prediction",
        "store",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "web_search_options",
        "verbosity",
    }
)

# --- the ChatGPT backend (codex providers) -----------------------------------------------------

CODEX_BACKEND_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "instructions",
        "input",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "store",
        "stream",
        "include",
        "prompt_cache_key",
        "text",
        "client_metadata",
        "service_tier",
    }
)
"""What the Codex CLI itself sends to chatgpt.com/backend-api/codex: the only fields a codex
provider passes on. The backend answers 400 to fields outside the set it knows."""

DROPPED_BY_CODEX_BACKEND: Mapping[str, str] = MappingProxyType(
    {
        "max_output_tokens": "the backend answers 400 'Unsupported parameter'",
        "temperature": "the backend answers 400 'Unsupported parameter'",
        "top_p": "the backend answers 400 'Unsupported parameter'",
        "user": "the account is the subscription's; the backend takes no end-user id",
        "safety_identifier": "as `user`",
        "metadata": "tags for stored responses; the backend stores nothing (store: false)",
        "truncation": "not accepted by the backend",
        "stream_options": "not accepted by the backend",
        "top_logprobs": "not accepted by the backend",
        "max_tool_calls": "not accepted by the backend",
        "prompt_cache_retention": "not accepted by the backend",
    }
)

_KNOWN_RESPONSES = (
    TRANSLATED_RESPONSES_REQUEST | DROPPED_RESPONSES_TO_CHAT | frozenset(REJECTED_RESPONSES_FIELDS)
)


def unknown_responses_fields(body: Mapping[str, Any]) -> frozenset[str]:
    """Top-level fields of a Responses request that translation to chat does not know."""
    return frozenset(body) - _KNOWN_RESPONSES


def unknown_chat_fields(body: Mapping[str, Any]) -> frozenset[str]:
    """Top-level fields of a chat request that translation to Responses does not know."""
    return frozenset(body) - TRANSLATED_CHAT_TO_RESPONSES - DROPPED_CHAT_TO_RESPONSES
