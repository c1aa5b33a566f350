"""A simulated provider's prompt cache: cached tokens for a prefix it has seen recently.

Modelled on what the providers document, at message granularity:

- OpenAI-compatible and Responses (codex) providers cache automatically: every prompt of at
  least 1024 tokens is cached by prefix, and a later prompt that starts with a cached prefix
  reports it in `prompt_tokens_details.cached_tokens` (Responses:
  `input_tokens_details.cached_tokens`), counted in 128-token increments
  (https://platform.openai.com/docs/guides/prompt-caching).
- Anthropic-format providers cache only up to a `cache_control` breakpoint (on a tool, a system
  block or a message's content block; a top-level `cache_control` puts it on the last block).
  The prefix up to the last breakpoint is read from the cache as far as it was seen
  (`cache_read_input_tokens`) and written for the rest (`cache_creation_input_tokens`);
  `input_tokens` is what remains. A prompt under 1024 tokens is not cached
  (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching). Anthropic looks back
  for earlier cache entries at block boundaries before a breakpoint; here every message
  boundary up to the breakpoint is a lookup point, and is written, which is what that lookback
  finds in a growing conversation.
- Entries live `ttl` seconds (5 minutes, both providers' documented minimum) from their last
  use, per model.

Token counts are the simulators' usual estimate (a JSON byte count / 4), so cached tokens never
exceed the prompt's reported size.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.types import JSONObject, ProviderFormat

MIN_CACHEABLE_TOKENS = 1024
OPENAI_INCREMENT = 128
DEFAULT_TTL = 300.0
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class CacheUsage:
    read: int = 0
    written: int = 0


NO_CACHE = CacheUsage()


@dataclass(frozen=True, slots=True)
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
            units, end = _anthropic_units(body)
        else:
            units = _codex_units(body) if fmt is ProviderFormat.CODEX else _openai_units(body)
            end = len(units)
        prefixes = _prefixes(units[:end])
        cacheable = [p for p in prefixes if p.tokens >= self.min_tokens]
        if not cacheable:
            return CacheUsage()
        now = self._clock()
        hit = next((p for p in reversed(cacheable) if self._live(model, p.digest, now)), None)
        for prefix in cacheable:
            self._remember(model, prefix.digest, now)
        read = min(hit.tokens if hit is not None else 0, prompt_tokens)
        if fmt is ProviderFormat.ANTHROPIC:
            written = min(cacheable[-1].tokens, prompt_tokens) - read
            return CacheUsage(read, max(0, written))
        if read:
            read -= (read - self.min_tokens) % OPENAI_INCREMENT
        return CacheUsage(read, 0)

    def _live(self, model: str, digest: str, now: float) -> bool:
        expires = self._entries.get((model, digest))
        return expires is not None and expires > now

    def _remember(self, model: str, digest: str, now: float) -> None:
        key = (model, digest)
        self._entries[key] = now + self.ttl
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


def _anthropic_units(body: JSONObject) -> tuple[list[bytes], int]:
    """The units in Anthropic's cache order (tools, system, messages) and how many of them the
    last breakpoint covers (0: no breakpoint, nothing is cached). `cache_control` itself is left
    out of the digests: moving a breakpoint does not change the cached content."""
    units: list[bytes] = []
    end = 0
    tools = body.get("tools")
    system = body.get("system")
    messages = body.get("messages")
    blocks: list[Any] = list(tools) if isinstance(tools, list) else []
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for block in blocks:
        units.append(_dump(_without_cache_control(block)))
        if isinstance(block, dict) and "cache_control" in block:
            end = len(units)
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        kept = [_without_cache_control(p) for p in parts] if parts else content
        units.append(_dump({"role": message.get("role"), "content": kept}))
        if any(isinstance(p, dict) and "cache_control" in p for p in parts):
            end = len(units)
    if isinstance(body.get("cache_control"), dict):
        end = len(units)
    return units, end


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict) and "cache_control" in value:
        return {k: v for k, v in value.items() if k != "cache_control"}
    return value
