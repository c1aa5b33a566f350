"""The one list of what translation leaves behind on purpose.

Every top-level request field of each dialect is either TRANSLATED (it has a counterpart, or is
folded into one) or DROPPED (the other dialect has nothing to carry it), with the reason next to
it. A field in neither set is new to us: the translators drop it too, but `unknown_request_fields`
names it, and a test runs every recorded client capture through that check, so a new client
field is noticed instead of silently lost. Same-format requests are passed through untouched and
lose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- Anthropic Messages request -> OpenAI chat completions request -----------------------------

TRANSLATED_ANTHROPIC_REQUEST: frozenset[str] = frozenset(
    {
        "model",  # replaced by the target's model
        "messages",
        "system",  # -> the leading system message (with role:system messages hoisted into it)
        "max_tokens",
        "metadata",  # metadata.user_id -> user, hashed
        "stop_sequences",  # -> stop
        "stream",  # -> stream, plus stream_options.include_usage
        "temperature",
        "top_p",
        "tools",  # custom tools only, see DROPPED_ANTHROPIC_TOOL_TYPES
        "tool_choice",  # disable_parallel_tool_use -> parallel_tool_calls
        "thinking",  # -> reasoning_effort
        "output_config",  # effort -> reasoning_effort; format -> response_format
    }
)

DROPPED_ANTHROPIC_TO_OPENAI: frozenset[str] = frozenset(
    {
        "top_k",  # not part of the OpenAI API; strict servers reject it
        # Server-side context editing (clearing old thinking/tool results). The proxy sends the
        # full history, which is what the client would see without the edit.
        "context_management",
        "cache_control",  # top-level automatic caching; OpenAI-compatible servers cache by prefix
        "container",  # Anthropic code-execution sandbox
        "mcp_servers",  # Anthropic-hosted MCP connector
        "service_tier",  # "auto"/"standard_only" mean something else than OpenAI's tiers
        "speed",  # Anthropic fast mode
        "inference_geo",  # Anthropic data residency
        "diagnostics",  # Anthropic prompt-cache diagnostics
        # Claude Code's dangerous-tool-use classifier context: meaningless to another provider,
        # and it carries local paths and git state that must not leave for a third party.
        "safeguards",
        "betas",  # SDK-side; normally becomes the anthropic-beta header
        "thread",  # Anthropic server-side threads
        "compaction",  # Anthropic server-side compaction
        "fallbacks",  # Anthropic server-side model fallback; the proxy's chain does this
        "fallback_credit_token",
        "billing_policy",
        "user_profile_id",  # Anthropic organisation plumbing
        "workspace_id",
    }
)

DROPPED_ANTHROPIC_TOOL_FIELDS: frozenset[str] = frozenset(
    {
        "cache_control",  # OpenAI-compatible caching is automatic
        # A deferred tool is sent with its full schema: every model can then call it; only the
        # token saving of deferral is lost.
        "defer_loading",
        "eager_input_streaming",  # OpenAI streams tool arguments anyway
        "input_examples",  # no OpenAI counterpart
        "allowed_callers",  # Anthropic programmatic tool calling
    }
)

ANTHROPIC_CUSTOM_TOOL_TYPES: frozenset[str | None] = frozenset({None, "custom"})
"""Tools with any other `type` (web_search_*, web_fetch_*, code_execution_*, bash_*,
text_editor_*, computer_*, memory_*, tool_search_tool_*, mcp_toolset...) are executed by
Anthropic's servers or have Anthropic-defined schemas: an OpenAI-compatible provider cannot run
them, so they are dropped, and a tool_choice naming one falls back to auto."""

ANTHROPIC_BLOCKS_FOR_OPENAI: frozenset[str] = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking"}
)
"""Content blocks that reach an OpenAI provider. Everything else is dropped: `redacted_thinking`
(encrypted, only Anthropic can read it), server tool blocks (`server_tool_use`,
`web_search_tool_result`, ...: results of tools the OpenAI provider never had), and
`container_upload`. Block-level `cache_control` and `citations` are dropped too."""

# --- OpenAI chat completions request -> Anthropic Messages request -----------------------------

TRANSLATED_OPENAI_REQUEST: frozenset[str] = frozenset(
    {
        "model",
        "messages",  # system/developer messages -> `system`; tool messages -> tool_result
        "max_tokens",
        "max_completion_tokens",  # preferred over max_tokens when both are given
        "temperature",  # clamped to Anthropic's 0..1
        "top_p",
        "stop",  # -> stop_sequences
        "stream",
        "tools",  # function tools -> input_schema tools
        "tool_choice",
        "parallel_tool_calls",  # false -> tool_choice.disable_parallel_tool_use
        "user",  # -> metadata.user_id
        "safety_identifier",  # -> metadata.user_id when `user` is absent
        "reasoning_effort",  # -> thinking budget
        "response_format",  # json_schema -> output_config.format
        "functions",  # legacy function calling -> tools
        "function_call",  # legacy -> tool_choice
    }
)

DROPPED_OPENAI_TO_ANTHROPIC: frozenset[str] = frozenset(
    {
        "stream_options",  # Anthropic streams always carry usage
        "frequency_penalty",  # no Anthropic sampling penalties
        "presence_penalty",
        "logit_bias",
        "logprobs",  # Anthropic returns no log probabilities
        "top_logprobs",
        "seed",  # no deterministic sampling option
        "n",  # one choice only: Anthropic returns a single message
        "modalities",  # text only; audio output does not exist there
        "audio",
        "prediction",  # predicted outputs
        "store",  # OpenAI stored completions
        "metadata",  # tags for OpenAI stored completions, not a user id
        "service_tier",
        "prompt_cache_key",  # Anthropic caching is by explicit breakpoints
        "prompt_cache_retention",
        "prompt_cache_options",
        "verbosity",
        "web_search_options",  # OpenAI-hosted search
        "moderation",
    }
)

DROPPED_OPENAI_MESSAGE_FIELDS: frozenset[str] = frozenset(
    {
        "name",  # participant names have no Anthropic counterpart
        "audio",  # reference to an earlier audio answer
        # Assistant reasoning from OpenAI-compatible providers carries no Anthropic signature,
        # and Anthropic rejects unsigned thinking blocks.
        "reasoning_content",
        "reasoning",
    }
)

_KNOWN: dict[tuple[str, str], frozenset[str]] = {
    ("anthropic", "openai"): TRANSLATED_ANTHROPIC_REQUEST | DROPPED_ANTHROPIC_TO_OPENAI,
    ("openai", "anthropic"): TRANSLATED_OPENAI_REQUEST | DROPPED_OPENAI_TO_ANTHROPIC,
}


def unknown_request_fields(body: Mapping[str, Any], source: str, target: str) -> frozenset[str]:
    """Top-level fields of `body` that translating from `source` to `target` does not know.

    `source`/`target` are ClientAPI values ("openai", "anthropic"). Same-format pairs lose
    nothing and return an empty set. Meant for a warning log, so new client fields get noticed.
    """
    if source == target:
        return frozenset()
    known = _KNOWN.get((source, target))
    if known is None:
        return frozenset()
    return frozenset(body) - known
