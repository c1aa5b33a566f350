"""Globs and targets: compiled once at load so that routing never compiles per request."""

from __future__ import annotations

import re

from proxy.errors import ConfigError
from proxy.types import Chain, Target

GLOB_CHARS = frozenset("*?[{")


def compile_glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A whole-string regex for a shell-style glob with `*`, `?`, `[...]`/`[!...]`, `{a,b}`.

    Raises ValueError for an unclosed `[` or `{` or a bad character range.
    """
    regex, end = _glob_sequence(pattern, 0, nested=False)
    assert end == len(pattern)
    try:
        return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    except re.error as e:
        raise ValueError(f"invalid glob {pattern!r}: {e}") from None


def _glob_sequence(p: str, i: int, *, nested: bool) -> tuple[str, int]:
    out: list[str] = []
    while i < len(p):
        c = p[i]
        if nested and c in ",}":
            break
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            start = i + 2 if p.startswith(("[!", "[^"), i) else i + 1
            close = p.find("]", start + 1)  # a `]` right after `[` is literal
            if close < 0:
                raise ValueError(f"unclosed '[' in glob {p!r}")
            body = p[start:close]
            # escape everything but `-` so that `[`, `&`, `~` never form nested-set syntax
            chars = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
            out.append(f"[{'^' if start == i + 2 else ''}{chars}]")
            i = close
        elif c == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                alt, i = _glob_sequence(p, i, nested=True)
                alternatives.append(alt)
                if i >= len(p):
                    raise ValueError(f"unclosed '{{' in glob {p!r}")
                if p[i] == "}":
                    break
                i += 1
            out.append(f"(?:{'|'.join(alternatives)})")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out), i


def compile_glob_at(pattern: str, key: str, *, ignore_case: bool) -> re.Pattern[str]:
    """`compile_glob`, with a bad glob reported as a ConfigError about `key`."""
    try:
        return compile_glob(pattern, ignore_case=ignore_case)
    except ValueError as e:
        raise ConfigError(key, str(e)) from None


PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FORBIDDEN_IN_MODEL = re.compile(r"[\s,|]")


def parse_target(text: str) -> Target:
    """`provider,model` or `provider:model`, split at the first `,` if any, else the first `:`.

    So `ollama,qwen2.5-coder:latest` and `openrouter:meta-llama/x:free` both keep their tags.
    Raises ConfigError (a ValueError) with an empty key.
    """
    s = text.strip()
    sep = "," if "," in s else ":" if ":" in s else None
    if sep is None:
        raise ConfigError("", f"{text!r} is not a target: expected 'provider,model'")
    provider, _, model = s.partition(sep)
    provider, model = provider.strip(), model.strip()
    if not provider or not model:
        raise ConfigError("", f"{text!r} is not a target: empty provider or model")
    if not PROVIDER_NAME.fullmatch(provider):
        raise ConfigError("", f"{text!r}: invalid provider name {provider!r}")
    if _FORBIDDEN_IN_MODEL.search(model):
        raise ConfigError("", f"{text!r}: model {model!r} contains whitespace, ',' or '|'")
    return Target(provider, model)


def parse_chain(text: str) -> Chain:
    """`target|target|...`. Errors carry the relative key of the bad part, e.g. `[2]`."""
    if not text.strip():
        raise ConfigError("", "empty chain: expected 'provider,model|provider,model|...'")
    targets: list[Target] = []
    for i, part in enumerate(text.split("|")):
        if not part.strip():
            raise ConfigError(f"[{i}]", "empty target (stray or doubled '|')")
        try:
            target = parse_target(part)
        except ConfigError as e:
            raise ConfigError(f"[{i}]", e.message) from None
        if target in targets:
            raise ConfigError(f"[{i}]", f"duplicate target '{target}'")
        targets.append(target)
    return tuple(targets)
