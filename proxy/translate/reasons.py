"""Stop reasons and token usage, mapped between the OpenAI and Anthropic dialects.

Shared by the stream decoders and encoders and the whole-reply readers (`replies`), so that a
streamed and a non-streamed answer from the same upstream always agree.

Usage invariant: `Usage.input_tokens` has Anthropic's meaning, the *uncached* input only. OpenAI's
`prompt_tokens` counts every prompt token, cached or not, so

    prompt_tokens == input_tokens + cache_read_input_tokens + cache_creation_input_tokens

and both directions go through that identity. `output_tokens` includes reasoning tokens in both
dialects (OpenAI `completion_tokens` and Anthropic `output_tokens` both bill them);
`reasoning_tokens` is the informational part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.tokens import tokens_for_chars
from proxy.types import Finish, JSONObject, StopReason, Usage

_OPENAI_FINISH_TO_STOP: dict[str, StopReason] = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    # Legacy single-function calling; still sent by some OpenAI-compatible servers.
    "function_call": StopReason.TOOL_USE,
    "content_filter": StopReason.CONTENT_FILTER,
    # Non-standard values seen from OpenAI-compatible providers.
    "sensitive": StopReason.CONTENT_FILTER,  # Z.ai / GLM
    "network_error": StopReason.END_TURN,  # Z.ai: upstream gave up, nothing better to say
    "eos": StopReason.END_TURN,
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}

_STOP_TO_OPENAI_FINISH: dict[StopReason, str] = {
    StopReason.END_TURN: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "tool_calls",
    # OpenAI has no separate value for a matched stop sequence.
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.CONTENT_FILTER: "content_filter",
    # The server paused a long turn; to an OpenAI client the turn simply ended.
    StopReason.PAUSE_TURN: "stop",
}

_ANTHROPIC_STOP_TO_STOP: dict[str, StopReason] = {
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "tool_use": StopReason.TOOL_USE,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "refusal": StopReason.CONTENT_FILTER,
    "pause_turn": StopReason.PAUSE_TURN,
    # The context window filled up: from the client's side the output was cut short.
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}

_STOP_TO_ANTHROPIC: dict[StopReason, str] = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.TOOL_USE: "tool_use",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.PAUSE_TURN: "pause_turn",
}


def openai_finish_to_stop(finish_reason: str | None) -> StopReason:
    """OpenAI `finish_reason` -> StopReason. Unknown or missing values count as a normal end."""
    if finish_reason is None:
        return StopReason.END_TURN
    return _OPENAI_FINISH_TO_STOP.get(finish_reason, StopReason.END_TURN)


def openai_finish(choice: Mapping[str, Any]) -> Finish:
    """A chat choice's `finish_reason` as a Finish, with the stop sequence that ended it where
    the server says which (vLLM's `stop_reason`, SGLang's `matched_stop`): a stream's last choice
    and a whole reply's choice alike."""
    finish_reason = choice.get("finish_reason")
    stop = openai_finish_to_stop(finish_reason if isinstance(finish_reason, str) else None)
    if stop is StopReason.END_TURN:
        for key in ("stop_reason", "matched_stop"):
            value = choice.get(key)
            if isinstance(value, str) and value:
                return Finish(StopReason.STOP_SEQUENCE, value)
    return Finish(stop)


def stop_to_openai_finish(reason: StopReason) -> str:
    return _STOP_TO_OPENAI_FINISH[reason]


def with_tool_calls(reason: StopReason, has_tool_calls: bool) -> StopReason:
    """The one rule for answers that call tools: they end with TOOL_USE whatever ordinary end
    the provider reported (several OpenAI-compatible servers say `stop`, a stop sequence may
    follow the call), because agent loops run the tools only when told so. A limit or a
    refusal keeps its own reason."""
    if has_tool_calls and reason in (StopReason.END_TURN, StopReason.STOP_SEQUENCE):
        return StopReason.TOOL_USE
    return reason


def final_finish(finish: Finish | None, has_tool_calls: bool) -> Finish:
    """How an answer ends for the client: its Finish (END_TURN when none came) under
    `with_tool_calls`; a stop sequence that a tool call overrode is not reported."""
    finish = finish or Finish(StopReason.END_TURN)
    reason = with_tool_calls(finish.reason, has_tool_calls)
    return finish if reason is finish.reason else Finish(reason)


def reported_or_estimated(usage: Usage | None, input_tokens: int, output_chars: int) -> Usage:
    """The usage an upstream reported, or, when it reported none, the request's input estimate
    and 4 characters per output token (text, reasoning and arguments as the client got them; a
    custom call counted in its function form, `responses_tools.custom_arguments`)."""
    if usage is not None:
        return usage
    return Usage(input_tokens=input_tokens, output_tokens=tokens_for_chars(output_chars))


def anthropic_stop_to_stop(stop_reason: str | None) -> StopReason:
    """Anthropic `stop_reason` -> StopReason. Unknown or missing values count as a normal end."""
    if stop_reason is None:
        return StopReason.END_TURN
    return _ANTHROPIC_STOP_TO_STOP.get(stop_reason, StopReason.END_TURN)


def stop_to_anthropic(reason: StopReason) -> str:
    return _STOP_TO_ANTHROPIC[reason]


def _int(value: Any) -> int:
    """A token count from upstream JSON: anything that is not a non-negative int counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _sub(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def usage_from_openai(usage: Mapping[str, Any] | None) -> Usage:
    """OpenAI `usage` -> Usage.

    Cached tokens come from `prompt_tokens_details.cached_tokens`; DeepSeek reports them as a
    top-level `prompt_cache_hit_tokens` and Kimi as a top-level `cached_tokens`, accepted too.
    """
    if not usage:
        return Usage()
    prompt = _int(usage.get("prompt_tokens"))
    cached = _int(_sub(usage, "prompt_tokens_details").get("cached_tokens"))
    if cached == 0:
        cached = _int(usage.get("prompt_cache_hit_tokens")) or _int(usage.get("cached_tokens"))
    cached = min(cached, prompt)
    return Usage(
        input_tokens=prompt - cached,
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_input_tokens=cached,
        cache_creation_input_tokens=0,
        reasoning_tokens=_int(_sub(usage, "completion_tokens_details").get("reasoning_tokens")),
    )


def usage_from_anthropic(usage: Mapping[str, Any] | None) -> Usage:
    """Anthropic `usage` -> Usage (field for field; `input_tokens` already excludes cache).

    Reasoning tokens come from `output_tokens_details.thinking_tokens` (a beta field) when present.
    """
    if not usage:
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_input_tokens=_int(usage.get("cache_read_input_tokens")),
        cache_creation_input_tokens=_int(usage.get("cache_creation_input_tokens")),
        reasoning_tokens=_int(_sub(usage, "output_tokens_details").get("thinking_tokens")),
    )


def usage_to_openai(usage: Usage) -> JSONObject:
    """Usage -> OpenAI `usage` (`CompletionUsage` shape, details always present)."""
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def usage_to_anthropic(usage: Usage) -> JSONObject:
    """Usage -> Anthropic `usage`: the four counters every Anthropic message carries, plus
    `output_tokens_details.thinking_tokens` when reasoning tokens are known."""
    out: JSONObject = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out
