"""A simulated provider's prompt cache: cached tokens for a prefix it has seen recently.

Modelled on what the providers document:

- OpenAI-compatible and Responses (codex) providers cache automatically, at message
  granularity: every prompt of at least 1024 tokens is cached by prefix, and a later prompt that
  starts with a cached prefix reports it in `prompt_tokens_details.cached_tokens` (Responses:
  `input_tokens_details.cached_tokens`), counted in 128-token increments
  (https://platform.openai.com/docs/guides/prompt-caching). `usage_style` renders the same
  count the way DeepSeek (`prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`,
  https://api-docs.deepseek.com/guides/kv_cache) or Kimi (a top-level `cached_tokens`) do.
- Anthropic-format providers cache per content block (a tool, a system block, a message's
  content block), following https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching:
  an entry is written only at a `cache_control` breakpoint (a top-level `cache_control` puts
  one on the last block), never at other block boundaries; a breakpoint finds an earlier entry
  at its own position or at a block boundary at most 20 blocks before it (the documented
  lookback), and the longest one found is read (`cache_read_input_tokens`); the prefix up to
  the last breakpoint beyond that is written (`cache_creation_input_tokens`); `input_tokens` is
  what remains. The minimum cacheable prefix depends on the model: 4096 tokens for Claude Opus
  4.5 / 4.6 and Haiku 4.5, 2048 for Haiku 3 / 3.5, else the provider's `min_tokens` (1024). A
  breakpoint with `"ttl": "1h"` writes an entry that lives an hour.
- Other entries live `ttl` seconds (5 minutes, both providers' documented minimum) from their
  last use, per model.

Token counts are the simulators' usual estimate (a JSON byte count / 4), so cached tokens never
exceed the prompt's reported size.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from proxy.frozen import frozen
from proxy.types import JSONObject, ProviderFormat

MIN_CACHEABLE_TOKENS = 1024
OPENAI_INCREMENT = 128
DEFAULT_TTL = 300.0
MAX_ENTRIES = 4096
LOOKBACK_BLOCKS = 20
ONE_HOUR = 3600.0
# Minimum cacheable prompt by Claude model (the prompt-caching page's table); others: min_tokens.
_CLAUDE_MINIMUMS = (
    (("opus-4-5", "opus-4.5", "opus-4-6", "opus-4.6", "haiku-4-5", "haiku-4.5"), 4096),
    (("3-haiku", "3-5-haiku", "haiku-3"), 2048),
)
USAGE_STYLES = ("openai", "deepseek", "kimi")


@frozen
class CacheUsage:
    read: int = 0
    written: int = 0


NO_CACHE = CacheUsage()


@frozen
class _Prefix:
    digest: str
    tokens: int


class PromptCache:
    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        min_tokens: int = MIN_CACHEABLE_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.min_tokens = min_tokens
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()

    def clear(self) -> None:
        """Forget everything (a provider restart, or a test that wants a cold cache)."""
        self._entries.clear()

    def account(self, body: JSONObject, fmt: ProviderFormat, prompt_tokens: int) -> CacheUsage:
        """The cache's share of a request's `prompt_tokens`, and remember its prefixes."""
        model = str(body.get("model", ""))
        if fmt is ProviderFormat.ANTHROPIC:
            return self._anthropic(body, model, prompt_tokens)
        units = _codex_units(body) if fmt is ProviderFormat.CODEX else _openai_units(body)
        cacheable = [p for p in _prefixes(units) if p.tokens >= self.min_tokens]
        if not cacheable:
            return CacheUsage()
        now = self._clock()
        hit = next((p for p in reversed(cacheable) if self._live(model, p.digest, now)), None)
        for prefix in cacheable:
            self._remember(model, prefix.digest, now, self.ttl)
        read = min(hit.tokens if hit is not None else 0, prompt_tokens)
        if read:
            read -= (read - self.min_tokens) % OPENAI_INCREMENT
        return CacheUsage(read, 0)

    def _anthropic(self, body: JSONObject, model: str, prompt_tokens: int) -> CacheUsage:
        units, breakpoints = _anthropic_units(body)
        minimum = _claude_minimum(model, self.min_tokens)
        prefixes = _prefixes(units)
        marked = [(at, ttl) for at, ttl in breakpoints if prefixes[at - 1].tokens >= minimum]
        if not marked:
            return CacheUsage()
        now = self._clock()
        read = 0
        for at, _ttl in marked:
            window = prefixes[max(0, at - 1 - LOOKBACK_BLOCKS) : at]
            hit = next(
                (
                    p
                    for p in reversed(window)
                    if p.tokens >= minimum and self._live(model, p.digest, now)
                ),
                None,
            )
            if hit is not None:
                read = max(read, hit.tokens)
                self._remember(model, hit.digest, now, self._ttl_of(model, hit.digest, now))
        for at, ttl in marked:
            self._remember(model, prefixes[at - 1].digest, now, ttl or self.ttl)
        read = min(read, prompt_tokens)
        written = min(prefixes[marked[-1][0] - 1].tokens, prompt_tokens) - read
        return CacheUsage(read, max(0, written))

    def _ttl_of(self, model: str, digest: str, now: float) -> float:
        """An entry's own lifetime, so a hit on a 1-hour entry renews it for an hour."""
        expires = self._entries.get((model, digest), now)
        return ONE_HOUR if expires - now > self.ttl else self.ttl

    def _live(self, model: str, digest: str, now: float) -> bool:
        expires = self._entries.get((model, digest))
        return expires is not None and expires > now

    def _remember(self, model: str, digest: str, now: float, ttl: float) -> None:
        key = (model, digest)
        self._entries[key] = max(now + ttl, self._entries.get(key, now))
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)


def _prefixes(units: list[bytes]) -> list[_Prefix]:
    """Each unit boundary as (digest of everything before it, its token count)."""
    running = hashlib.sha256()
    size = 0
    out: list[_Prefix] = []
    for unit in units:
        running.update(len(unit).to_bytes(8, "big"))
        running.update(unit)
        size += len(unit)
        out.append(_Prefix(running.copy().hexdigest(), size // 4))
    return out


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _openai_units(body: JSONObject) -> list[bytes]:
    units = [_dump(body["tools"])] if body.get("tools") else []
    messages = body.get("messages")
    if isinstance(messages, list):
        units += [_dump(m) for m in messages]
    return units


def _codex_units(body: JSONObject) -> list[bytes]:
    units = [_dump(body.get("instructions", ""))]
    if body.get("tools"):
        units.append(_dump(body["tools"]))
    items = body.get("input")
    if isinstance(items, list):
        units += [_dump(i) for i in items]
    return units


def _claude_minimum(model: str, default: int) -> int:
    name = model.lower()
    return next(
        (floor for marks, floor in _CLAUDE_MINIMUMS if any(m in name for m in marks)), default
    )


def _anthropic_units(body: JSONObject) -> tuple[list[bytes], list[tuple[int, float | None]]]:
    """The content blocks in Anthropic's cache order (tools, system, messages), and each
    breakpoint as (how many blocks it covers, its `"1h"` lifetime or None for the default).
    `cache_control` itself is left out of the digests: moving a breakpoint does not change the
    cached content. A message's blocks carry its role, so the same text from another role is
    another prefix."""
    units: list[bytes] = []
    breakpoints: list[tuple[int, float | None]] = []

    def add(unit: Any, marker: Any) -> None:
        units.append(_dump(unit))
        if isinstance(marker, dict) and "cache_control" in marker:
            control = marker["cache_control"]
            long = isinstance(control, dict) and control.get("ttl") == "1h"
            breakpoints.append((len(units), ONE_HOUR if long else None))

    tools = body.get("tools")
    system = body.get("system")
    messages = body.get("messages")
    blocks: list[Any] = list(tools) if isinstance(tools, list) else []
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for block in blocks:
        add(_without_cache_control(block), block)
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            add({"role": message.get("role"), "block": _without_cache_control(part)}, part)
    if units and isinstance(body.get("cache_control"), dict):
        add_top = body["cache_control"]
        long = add_top.get("ttl") == "1h"
        if not breakpoints or breakpoints[-1][0] != len(units):
            breakpoints.append((len(units), ONE_HOUR if long else None))
    return units, breakpoints


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict) and "cache_control" in value:
        return {k: v for k, v in value.items() if k != "cache_control"}
    return value
