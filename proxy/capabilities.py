"""What each model can do: context window, output cap, tools, vision, reasoning, prefill, price.

Three layers, field by field, first known value wins:
1. the config: `[providers.capabilities."<model or glob>"]` tables of one provider;
2. the provider's published model list, cached by `llmproxy providers refresh`
   (`proxy.model_catalog`), so what the provider says beats what we guessed;
3. the built-in table below.
A field nobody knows stays None, and routing never skips a target for an unknown capability.

Routing asks `unfit_reason` whether a target can serve a request; the fallback loop asks
`output_cap` how far to lower `max_tokens` and `clamp_max_tokens` to do it for pass-through.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

from proxy.errors import ConfigError, closest
from proxy.frozen import field, fields, frozen, replace
from proxy.translate.common import MIN_THINKING_BUDGET
from proxy.types import JSONObject, ProviderFormat, RequestSummary, Target

ReasoningField: TypeAlias = Literal["reasoning_content", "thinking", "reasoning"]
REASONING_FIELDS: tuple[str, ...] = get_args(ReasoningField)


class PrefillStyle(StrEnum):
    """How a provider continues a partial assistant answer (what a mid-stream continuation
    sends). Each is what the provider documents; a provider refuses the others."""

    ASSISTANT = "assistant"
    """A trailing assistant message is continued (Anthropic, OpenRouter, llama.cpp server)."""
    PREFIX = "prefix"
    """The trailing assistant message carries `"prefix": true` (DeepSeek's beta endpoint,
    Mistral)."""
    PARTIAL = "partial"
    """The trailing assistant message carries `"partial": true` (Moonshot Kimi)."""
    CONTINUE_FINAL_MESSAGE = "continue_final_message"
    """A trailing assistant message plus `continue_final_message: true` and
    `add_generation_prompt: false` (vLLM, SGLang)."""


Prefill: TypeAlias = PrefillStyle | Literal[False]
"""A provider's prefill capability: its style, or False when it continues nothing."""
PREFILL_VALUES: tuple[str, ...] = tuple(style.value for style in PrefillStyle)

# Known styles of public OpenAI-compatible APIs, by host and path prefix: what a provider there
# gets when its config does not say `prefill`.
PREFILL_BY_HOST: tuple[tuple[str, str, PrefillStyle], ...] = (
    ("api.deepseek.com", "/beta", PrefillStyle.PREFIX),  # "Chat Prefix Completion (Beta)"
    ("api.mistral.ai", "", PrefillStyle.PREFIX),
    ("api.moonshot.ai", "", PrefillStyle.PARTIAL),  # "Partial Mode"
    ("api.moonshot.cn", "", PrefillStyle.PARTIAL),
    ("openrouter.ai", "", PrefillStyle.ASSISTANT),
)


def default_prefill(fmt: ProviderFormat, api_base_url: str) -> Prefill:
    """What a provider continues when its config does not say: Anthropic-format providers take
    a trailing assistant message; OpenAI-compatible ones only where their host is known."""
    if fmt is ProviderFormat.ANTHROPIC:
        return PrefillStyle.ASSISTANT
    if fmt is not ProviderFormat.OPENAI:
        return False
    parts = urlsplit(api_base_url)
    host, path = (parts.hostname or "").lower(), parts.path or "/"
    for known, prefix, style in PREFILL_BY_HOST:
        if host == known and path.startswith(prefix):
            return style
    return False


def parse_prefill(value: object, fmt: ProviderFormat, key: str) -> Prefill:
    """A `prefill` config value: true (the trailing assistant message), false, or a style."""
    if value is True:
        return PrefillStyle.ASSISTANT
    if value is False:
        return False
    if not isinstance(value, str) or value not in PREFILL_VALUES:
        raise ConfigError(key, f"expected true, false or one of {', '.join(PREFILL_VALUES)}")
    style = PrefillStyle(value)
    if fmt is not ProviderFormat.OPENAI and style is not PrefillStyle.ASSISTANT:
        raise ConfigError(
            key,
            f"'{value}' is a style of OpenAI-compatible APIs; a {fmt} provider takes true or false",
        )
    return style


MIN_OUTPUT_ROOM = 1024
"""A target must leave room for at least this many output tokens (or the request's own
`max_tokens`, if smaller) after the input; less room than that skips it. More room than that
but less than requested lowers `max_tokens` to fit (`output_cap`)."""
ESTIMATE_MARGIN = 0.10
"""Token estimates are not the provider's tokenizer: the window check adds this much."""


@frozen
class ModelCapabilities:
    """What one model (at one provider) can do. None means unknown, never "no"."""

    context_window: int | None = None
    """Input plus output tokens, as the provider enforces it."""
    max_output_tokens: int | None = None
    tools: bool | None = None
    vision: bool | None = None
    reasoning: bool | None = None
    reasoning_field: ReasoningField | None = None
    """Where its chain of thought arrives: OpenAI-compatible `reasoning_content`, Anthropic
    `thinking` blocks, or Responses `reasoning` items."""
    prefill: Prefill | None = None
    """How a partial answer is continued (`PrefillStyle`), or False when it is not."""
    price_in: float | None = None
    """USD per million input tokens."""
    price_out: float | None = None
    """USD per million output tokens."""
    price_cache_read: float | None = None
    """USD per million input tokens read from the provider's prompt cache."""
    price_cache_write: float | None = None
    """USD per million input tokens written to the prompt cache (Anthropic bills these)."""
    retired: bool | None = None
    """The provider's model list says it no longer serves this model."""
    approximate: bool = False
    """Some of these numbers are educated guesses (see the built-in table)."""
    source: str = "unknown"
    """Which layers supplied the values: `config`, `catalog`, `builtin:<glob>`, joined by +."""

    def over(self, lower: ModelCapabilities) -> ModelCapabilities:
        """These values, with the gaps filled from `lower`; `source` names the layers used."""
        if all(getattr(self, f) is None for f in CAPABILITY_FIELDS):
            return lower
        if not any(
            getattr(self, f) is None and getattr(lower, f) is not None for f in CAPABILITY_FIELDS
        ):
            return self
        merged = {
            f: getattr(self, f) if getattr(self, f) is not None else getattr(lower, f)
            for f in CAPABILITY_FIELDS
        }
        return ModelCapabilities(
            **merged,
            approximate=self.approximate or lower.approximate,
            source=f"{self.source}+{lower.source}",
        )

    @property
    def blended_price(self) -> float | None:
        """USD per million tokens at 3 input : 1 output, the usual blend for comparing models."""
        if self.price_in is None or self.price_out is None:
            return None
        return (3 * self.price_in + self.price_out) / 4

    def to_json(self) -> JSONObject:
        return {f.name: getattr(self, f.name) for f in fields(self)}


CAPABILITY_FIELDS: tuple[str, ...] = (
    "context_window",
    "max_output_tokens",
    "tools",
    "vision",
    "reasoning",
    "reasoning_field",
    "prefill",
    "price_in",
    "price_out",
    "price_cache_read",
    "price_cache_write",
    "retired",
)
UNKNOWN = ModelCapabilities()


# --- the built-in table ------------------------------------------------------------------------
# Keys are case-insensitive shell globs over the whole model id (and, for ids such as
# `anthropic/claude-sonnet-4.5`, its last `/` segment); the first match wins, so specific entries
# precede family-wide ones. Prices: USD per million tokens at the maker or its usual host, early
# 2026. `approx` marks numbers that vary by provider, tier or release: Cerebras' free tier caps
# context far below a model's native window, hosts price open models differently, and
# family-wide globs guess at members released later. Correct any of them per provider in the
# config, or replace them with what the provider publishes (`llmproxy providers refresh`).

Price: TypeAlias = tuple[float, float] | None
_ANTHROPIC: ReasoningField = "thinking"
_OPENAI: ReasoningField = "reasoning"
_CHAT: ReasoningField = "reasoning_content"


def _m(
    window: int | None,
    out: int | None,
    price: Price = None,
    *,
    tools: bool | None = True,
    vision: bool | None = False,
    reasoning: ReasoningField | Literal[False] | None = None,
    approx: bool = False,
) -> ModelCapabilities:
    return ModelCapabilities(
        context_window=window,
        max_output_tokens=out,
        tools=tools,
        vision=vision,
        reasoning=None if reasoning is None else reasoning is not False,
        reasoning_field=reasoning or None,
        price_in=price[0] if price else None,
        price_out=price[1] if price else None,
        approximate=approx,
    )


def _cached(caps: ModelCapabilities, read: float, write: float | None) -> ModelCapabilities:
    """Cache rates as multiples of the input price, as the maker publishes them."""
    if caps.price_in is None:
        return caps
    return replace(
        caps,
        price_cache_read=caps.price_in * read,
        price_cache_write=None if write is None else caps.price_in * write,
    )


def _claude(
    out: int, price: Price, *, thinking: bool = True, approx: bool = False, vision: bool = True
) -> ModelCapabilities:
    # Anthropic: cache hits cost 0.1x input, 5-minute cache writes 1.25x.
    return _cached(
        _m(
            200_000,
            out,
            price,
            vision=vision,
            reasoning=_ANTHROPIC if thinking else False,
            approx=approx,
        ),
        0.1,
        1.25,
    )


def _gpt5(price: Price, *, approx: bool = False) -> ModelCapabilities:
    # 400k is the whole window (272k input + 128k output) on the Responses API; cached input
    # is billed at a tenth of the input price.
    return _cached(
        _m(400_000, 128_000, price, vision=True, reasoning=_OPENAI, approx=approx), 0.1, None
    )


def _glm(window: int, out: int, price: Price, *, approx: bool = False) -> ModelCapabilities:
    return _m(window, out, price, reasoning=_CHAT, approx=approx)


BUILTIN: tuple[tuple[str, ModelCapabilities], ...] = (
    # --- Anthropic ------------------------------------------------------------------------------
    ("claude-opus-4-6*", _claude(128_000, (5.0, 25.0), approx=True)),
    ("claude-opus-4.6*", _claude(128_000, (5.0, 25.0), approx=True)),
    ("claude-opus-4-5*", _claude(64_000, (5.0, 25.0))),
    ("claude-opus-4.5*", _claude(64_000, (5.0, 25.0))),
    ("claude-opus-4-1*", _claude(32_000, (15.0, 75.0))),
    ("claude-opus-4.1*", _claude(32_000, (15.0, 75.0))),
    ("claude-opus-4-2025*", _claude(32_000, (15.0, 75.0))),
    ("claude-opus-4-0*", _claude(32_000, (15.0, 75.0))),
    ("claude-opus-4", _claude(32_000, (15.0, 75.0))),
    ("claude-opus-*", _claude(64_000, (5.0, 25.0), approx=True)),
    ("claude-sonnet-4*", _claude(64_000, (3.0, 15.0))),  # 1M window only with a beta header
    ("claude-sonnet-*", _claude(64_000, (3.0, 15.0), approx=True)),
    ("claude-haiku-4*", _claude(64_000, (1.0, 5.0))),
    ("claude-haiku-*", _claude(64_000, (1.0, 5.0), approx=True)),
    ("claude-3-7-sonnet*", _claude(64_000, (3.0, 15.0))),
    ("claude-3-5-sonnet*", _claude(8_192, (3.0, 15.0), thinking=False)),
    ("claude-3-5-haiku*", _claude(8_192, (0.8, 4.0), thinking=False, vision=False, approx=True)),
    ("claude-3-haiku*", _claude(4_096, (0.25, 1.25), thinking=False)),
    ("claude-3-opus*", _claude(4_096, (15.0, 75.0), thinking=False)),
    ("claude-*", _claude(64_000, None, approx=True)),
    # --- OpenAI ---------------------------------------------------------------------------------
    ("gpt-5*-pro*", _gpt5((15.0, 120.0), approx=True)),
    ("gpt-5*-chat*", _m(128_000, 16_384, (1.25, 10.0), vision=True, reasoning=False, approx=True)),
    ("gpt-5*-nano*", _gpt5((0.05, 0.4))),
    ("gpt-5*-mini*", _gpt5((0.25, 2.0))),
    ("gpt-5.2*", _gpt5((1.75, 14.0), approx=True)),
    ("gpt-5.1*", _gpt5((1.25, 10.0))),
    ("gpt-5-codex*", _gpt5((1.25, 10.0))),
    ("gpt-5", _gpt5((1.25, 10.0))),
    ("gpt-5-2025*", _gpt5((1.25, 10.0))),
    ("gpt-5*", _gpt5(None, approx=True)),
    ("gpt-4.1-nano*", _m(1_047_576, 32_768, (0.1, 0.4), vision=True, reasoning=False)),
    ("gpt-4.1-mini*", _m(1_047_576, 32_768, (0.4, 1.6), vision=True, reasoning=False)),
    ("gpt-4.1*", _m(1_047_576, 32_768, (2.0, 8.0), vision=True, reasoning=False)),
    ("gpt-4o-mini*", _m(128_000, 16_384, (0.15, 0.6), vision=True, reasoning=False)),
    ("gpt-4o*", _m(128_000, 16_384, (2.5, 10.0), vision=True, reasoning=False)),
    ("o4-mini*", _m(200_000, 100_000, (1.1, 4.4), vision=True, reasoning=_OPENAI)),
    ("o3*", _m(200_000, 100_000, (2.0, 8.0), vision=True, reasoning=_OPENAI, approx=True)),
    # --- Z.ai GLM (text-only unless the id has a `v`) -------------------------------------------
    ("glm-4.[5-9]v*", _m(65_536, 16_384, (0.6, 1.8), vision=True, reasoning=_CHAT, approx=True)),
    ("glm-5*", _glm(200_000, 128_000, (1.0, 3.2), approx=True)),
    ("glm-4.7-flash*", _glm(200_000, 128_000, (0.0, 0.0), approx=True)),
    ("glm-4.7*", _glm(200_000, 128_000, (0.6, 2.2))),
    ("glm-4.6*", _glm(200_000, 128_000, (0.6, 2.2))),
    ("glm-4.5-air*", _glm(128_000, 96_000, (0.2, 1.1))),
    ("glm-4.5*", _glm(128_000, 96_000, (0.6, 2.2))),
    ("glm-*", _glm(128_000, 16_384, None, approx=True)),
    # --- Meta Llama (ids as Cerebras and Groq spell them) ---------------------------------------
    # Cerebras' free tier serves llama3.1-8b with an 8k window (32k paid): the limit that made
    # the reference proxy send 15-130k-token agent requests there to fail.
    ("llama3.1-8b", _m(8_192, 8_192, (0.1, 0.1), reasoning=False, approx=True)),
    ("llama-3.3-70b*", _m(131_072, 32_768, (0.85, 1.2), reasoning=False, approx=True)),
    ("llama-3.1-8b*", _m(131_072, 8_192, (0.05, 0.08), reasoning=False, approx=True)),
    ("*llama-4*", _m(131_072, 8_192, None, vision=True, reasoning=False, approx=True)),
    ("*llama*", _m(131_072, None, None, tools=None, reasoning=False, approx=True)),
    # --- MiniMax (Anthropic-format API: thinking blocks) ----------------------------------------
    ("minimax-m2*", _m(204_800, 131_072, (0.3, 1.2), reasoning=_ANTHROPIC, approx=True)),
    ("minimax-m1*", _m(1_000_000, 80_000, (0.4, 2.2), reasoning=_ANTHROPIC, approx=True)),
    ("minimax-*", _m(204_800, None, None, reasoning=_ANTHROPIC, approx=True)),
    # --- Moonshot Kimi --------------------------------------------------------------------------
    ("kimi-k2.5*", _m(262_144, 32_768, (0.6, 3.0), vision=True, reasoning=_CHAT, approx=True)),
    ("kimi-k2-thinking*", _m(262_144, 32_768, (0.6, 2.5), reasoning=_CHAT, approx=True)),
    ("kimi-k2-0711*", _m(131_072, 16_384, (0.6, 2.5), reasoning=False)),
    ("kimi-k2*", _m(262_144, 16_384, (0.6, 2.5), reasoning=False, approx=True)),
    ("kimi*", _m(262_144, 32_768, None, reasoning=_ANTHROPIC, approx=True)),
    # --- DeepSeek -------------------------------------------------------------------------------
    ("deepseek-reasoner*", _m(131_072, 65_536, (0.28, 0.42), reasoning=_CHAT)),
    ("deepseek-chat*", _m(131_072, 8_192, (0.28, 0.42), reasoning=False)),
    ("deepseek-*", _m(131_072, 8_192, None, reasoning=None, approx=True)),
    # --- Qwen -----------------------------------------------------------------------------------
    ("qwen*-vl*", _m(131_072, 8_192, None, vision=True, approx=True)),
    ("qwen3-coder*", _m(262_144, 65_536, (0.45, 1.8), reasoning=False, approx=True)),
    ("qwen3*", _m(131_072, 32_768, None, reasoning=_CHAT, approx=True)),
    ("qwen2.5*", _m(32_768, 8_192, None, reasoning=False, approx=True)),
    ("qwen*", _m(32_768, 8_192, None, approx=True)),
    # --- Google Gemini (through OpenRouter or an OpenAI-compatible endpoint) --------------------
    ("gemini-2.5-pro*", _m(1_048_576, 65_536, (1.25, 10.0), vision=True, reasoning=_OPENAI)),
    ("gemini-2.5-flash-lite*", _m(1_048_576, 65_536, (0.1, 0.4), vision=True, reasoning=_OPENAI)),
    ("gemini-2.5-flash*", _m(1_048_576, 65_536, (0.3, 2.5), vision=True, reasoning=_OPENAI)),
    ("gemini-*", _m(1_048_576, 65_536, None, vision=True, approx=True)),
)


@functools.cache
def _compiled() -> tuple[tuple[Callable[[str], bool], ModelCapabilities], ...]:
    """The table's globs as matchers of a lower-case name, built once on first use: a constant,
    built lazily because every CLI command imports this module and most never look a model up."""
    return tuple(
        (_matcher(glob), replace(caps, source=f"builtin:{glob}")) for glob, caps in BUILTIN
    )


def _matcher(glob: str) -> Callable[[str], bool]:
    """Case-insensitive `fnmatch` of `glob`. Most entries are a name or a prefix and `*`, which
    need no regex: compiling all seventy cost a third of the interpreter's start-up, paid by
    every `llmproxy route test` (tests/bench/bench_startup.py)."""
    lowered = glob.lower()
    stem = lowered.removesuffix("*")
    if any(c in stem for c in "*?["):
        regex = re.compile(fnmatch.translate(lowered))
        return lambda name: regex.fullmatch(name) is not None
    if stem != lowered:
        return lambda name: name.startswith(stem)
    return lambda name: name == lowered


def builtin_capabilities(model: str) -> ModelCapabilities:
    """The first built-in entry matching `model` (or its last `/` segment), else UNKNOWN."""
    names = (model, model.rsplit("/", 1)[-1]) if "/" in model else (model,)
    for name in names:
        lowered = name.lower()
        for matches, caps in _compiled():
            if matches(lowered):
                return caps
    return UNKNOWN


# --- the provider catalog (filled by proxy.model_catalog) --------------------------------------


@frozen
class ProviderCatalog:
    """One provider's published model list, as cached by `llmproxy providers refresh`."""

    api_base_url: str
    fetched_at: str
    models: Mapping[str, ModelCapabilities]


@frozen
class Catalog:
    providers: Mapping[str, ProviderCatalog] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, target: Target) -> ModelCapabilities | None:
        listing = self.providers.get(target.provider)
        return listing.models.get(target.model) if listing is not None else None

    def lists(self, target: Target) -> bool | None:
        """Whether the provider's published list has the model; None when there is no list."""
        listing = self.providers.get(target.provider)
        return target.model in listing.models if listing is not None else None


EMPTY_CATALOG = Catalog()


# --- config overrides --------------------------------------------------------------------------


@frozen
class CapabilityOverride:
    """One `[providers.capabilities."<model or glob>"]` table."""

    pattern: str
    capabilities: ModelCapabilities
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def matches(self, model: str) -> bool:
        return self.regex.fullmatch(model) is not None


_BOOL_KEYS = ("tools", "vision", "reasoning", "retired")
_INT_KEYS = ("context_window", "max_output_tokens")
_PRICE_KEYS = ("price_in", "price_out", "price_cache_read", "price_cache_write")
OVERRIDE_KEYS: tuple[str, ...] = (
    *_INT_KEYS,
    *_BOOL_KEYS,
    "prefill",
    "reasoning_field",
    *_PRICE_KEYS,
)


def capabilities_from_toml(
    values: Any, key: str, fmt: ProviderFormat = ProviderFormat.OPENAI
) -> ModelCapabilities:
    """Validate one override table; errors name the offending key under `key`."""
    if not isinstance(values, dict):
        raise ConfigError(key, f"expected table, got {type(values).__name__}")
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        at = f"{key}.{name}"
        if name not in OVERRIDE_KEYS:
            close = closest(name, OVERRIDE_KEYS)
            raise ConfigError(
                at,
                f"unknown key (did you mean '{close}'?)"
                if close
                else f"unknown key (known: {', '.join(OVERRIDE_KEYS)})",
            )
        if name == "prefill":
            value = parse_prefill(value, fmt, at)
        elif name in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(at, "expected boolean")
        elif name in _INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(at, "expected a positive integer (tokens)")
        elif name in _PRICE_KEYS:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise ConfigError(at, "expected a number >= 0 (USD per million tokens)")
            value = float(value)
        elif value not in REASONING_FIELDS:
            raise ConfigError(at, f"expected one of {', '.join(REASONING_FIELDS)}")
        parsed[name] = value
    return ModelCapabilities(**parsed, source="config")


def resolve_capabilities(
    model: str,
    overrides: tuple[CapabilityOverride, ...] = (),
    catalog: ModelCapabilities | None = None,
    prefill: Prefill | None = None,
) -> ModelCapabilities:
    """Config overrides (in order), then the catalog entry, then the built-in table; `prefill`
    (the provider's own setting) answers last for the prefill field."""
    layers = [o.capabilities for o in overrides if o.matches(model)]
    if catalog is not None:
        layers.append(catalog)
    result = builtin_capabilities(model)
    for layer in reversed(layers):
        result = layer.over(result)
    if result.prefill is None and prefill is not None:
        result = replace(result, prefill=prefill)
    return result


# --- using them --------------------------------------------------------------------------------


def _padded(input_tokens: int) -> int:
    return math.ceil(max(input_tokens, 0) * (1 + ESTIMATE_MARGIN))


def unfit_reason(caps: ModelCapabilities, summary: RequestSummary) -> str | None:
    """Why a model with `caps` cannot serve the request, or None when it may."""
    if caps.retired:
        return "retired: the provider's model list marks it retired"
    if summary.has_images and caps.vision is False:
        return "text-only model: the request contains images"
    if summary.has_tools and caps.tools is False:
        return "no tool support: the request defines tools"
    if caps.context_window is not None:
        wanted = summary.max_output_tokens
        need = MIN_OUTPUT_ROOM if wanted is None else min(wanted, MIN_OUTPUT_ROOM)
        if _padded(summary.token_estimate) + need > caps.context_window:
            return (
                f"too large: ~{summary.token_estimate} input tokens (+{ESTIMATE_MARGIN:.0%} "
                f"margin) and {need} output do not fit its {caps.context_window}-token window"
            )
    return None


def output_cap(caps: ModelCapabilities, input_tokens: int) -> int | None:
    """The most output tokens worth asking this model for: its own cap, and what the window
    leaves after the (padded) input. None when neither is known."""
    limits = [caps.max_output_tokens] if caps.max_output_tokens is not None else []
    if caps.context_window is not None:
        limits.append(caps.context_window - _padded(input_tokens))
    return max(1, min(limits)) if limits else None


_OUTPUT_KEYS: Mapping[ProviderFormat, tuple[str, ...]] = MappingProxyType(
    {
        ProviderFormat.ANTHROPIC: ("max_tokens",),
        ProviderFormat.OPENAI: ("max_completion_tokens", "max_tokens"),
        ProviderFormat.CODEX: ("max_output_tokens",),
    }
)


def clamp_max_tokens(body: JSONObject, fmt: ProviderFormat, cap: int | None) -> JSONObject:
    """`body` (in the provider's format `fmt`) with its output limit lowered to `cap`.

    Returns `body` itself when nothing changes; otherwise a shallow copy. An Anthropic thinking
    budget must stay below `max_tokens`: it is halved to fit, and thinking is dropped when that
    leaves less than Anthropic's minimum budget (as the OpenAI->Anthropic translator does).
    A body without an output limit is left alone: the provider's default applies.
    """
    if cap is None:
        return body
    out: JSONObject | None = None
    for key in _OUTPUT_KEYS[fmt]:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            out = out if out is not None else dict(body)
            out[key] = cap
    if out is None or fmt is not ProviderFormat.ANTHROPIC:
        return body if out is None else out
    thinking = out.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and isinstance(thinking, dict) and budget >= cap:
        if cap // 2 >= MIN_THINKING_BUDGET:
            out["thinking"] = {**thinking, "budget_tokens": cap // 2}
        else:
            del out["thinking"]
    return out
