"""Keyword rules: a route chosen from the words of the last user message.

Matching is on whole words and phrases, never a substring inside a word: "reason" does not
match "reasonable", "think" does not match "rethink". Case is ignored; letters beyond ASCII
(é, ß, Cyrillic, Greek) are word characters like any other. A phrase's words may be separated
by any run of spaces, newlines or hyphens, so "step by step" also matches "step-by-step" and a
line break inside it. Scripts written without spaces between words (Chinese, Japanese, Thai,
Korean with its attached particles) have no word boundaries to respect: at their edges a phrase
matches as a substring.

Claude Code puts `<system-reminder>` blocks into user messages; their text is not the user's
and is ignored (the reference proxy routed on words such as "plan" found there).

Every rule that matches is returned, best first: higher `priority`, then the longer (more
specific) matched phrase, then the earlier rule in the config. Routing walks their chains in
that order, so when the best rule's targets cannot serve a request, the next rule's do.

The reference proxy's markdown taxonomy files load into the same rules (`read_taxonomy`,
`taxonomy_rules`): the first `# Heading` names the rule (lower-cased, spaces to `_`), every
`synonyms::` line adds comma-separated phrases (a line ending in `,` continues on the next),
the first `route::` (or `routing::`) line gives `provider, model`, and `priority::` is 0-100
(default 50). Unlike the reference, the priority is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.errors import ConfigError
from proxy.frozen import field, frozen
from proxy.types import Chain, Scenario, Target

if TYPE_CHECKING:
    from logging import Logger


def _log() -> Logger:
    import logging  # only when a taxonomy is read: the CLI's start-up does without it

    return logging.getLogger("llmproxy.keywords")


DEFAULT_PRIORITY = 50
TAXONOMY_FOLDERS = (
    "routing_scenarios",
    "providers",
    "transformers",
    "configuration",
    "operations",
    "technical",
)

# Scripts without spaces between words (Thai, Hangul, kana, CJK): no boundary assertion at a
# phrase edge in them. Ranges, not a regex: compiling that character class cost over a third of
# the interpreter's start-up in every command that loads the config (tests/bench/bench_startup.py).
_UNSPACED = (
    (0x0E00, 0x0E7F),
    (0x1100, 0x11FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
)
_SEPARATOR = r"[\s\-]+"
_REMINDER = re.compile(r"<system-reminder>.*?(?:</system-reminder>|\Z)", re.DOTALL)


def _unspaced(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _UNSPACED)


@frozen
class KeywordRule:
    name: str
    phrases: tuple[str, ...]
    chain: Chain
    priority: int = DEFAULT_PRIORITY
    route: str = ""
    """The route as written: a route name, a chain, or a taxonomy `route::` value."""
    origin: str = ""
    """Where it was defined: a config key (`router.keyword_rules[2]`) or a taxonomy file."""
    pattern: re.Pattern[str] = field(default=re.compile(r"(?!)"), repr=False, compare=False)


@frozen
class RuleMatch:
    rule: KeywordRule
    text: str
    """The words of the user's text that matched (case-folded)."""


def phrase_regex(phrase: str) -> tuple[bool, str]:
    """(whether the phrase needs a word boundary before it, the regex source for the rest).

    The leading boundary is left to the caller so that one lookbehind guards a whole
    alternation: a lookbehind inside each alternative makes the scan some 30 times slower.
    Raises ValueError for a phrase with no words.
    """
    words = [w for w in re.split(_SEPARATOR, phrase.strip().casefold()) if w]
    if not words:
        raise ValueError(f"phrase {phrase!r} has no words")
    body = _SEPARATOR.join(re.escape(w) for w in words)
    tail = "" if _unspaced(words[-1][-1]) else r"(?!\w)"
    return not _unspaced(words[0][0]), body + tail


def compile_rule(
    name: str,
    phrases: Iterable[str],
    chain: Chain,
    *,
    priority: int = DEFAULT_PRIORITY,
    route: str = "",
    origin: str = "",
) -> KeywordRule:
    """One rule with its phrases compiled into one regex over case-folded text, longest
    alternative first (so the longest phrase wins where several start at the same place).
    Raises ValueError."""
    unique = tuple(dict.fromkeys(p.strip() for p in phrases))
    if not unique:
        raise ValueError("a keyword rule needs at least one phrase")
    bounded: list[str] = []
    unbounded: list[str] = []
    for phrase in unique:
        needs_boundary, source = phrase_regex(phrase)
        (bounded if needs_boundary else unbounded).append(source)
    groups = [
        prefix + "(?:" + "|".join(sorted(sources, key=len, reverse=True)) + ")"
        for prefix, sources in ((r"(?<!\w)", bounded), ("", unbounded))
        if sources
    ]
    return KeywordRule(name, unique, chain, priority, route, origin, re.compile("|".join(groups)))


def user_words(text: str) -> str:
    """The part of a user message that the user wrote (reminder blocks removed)."""
    return _REMINDER.sub(" ", text) if "<system-reminder>" in text else text


def match_rules(rules: Iterable[KeywordRule], text: str) -> tuple[RuleMatch, ...]:
    """Every rule with a phrase in `text`, best first (see the module docstring)."""
    folded = user_words(text).casefold()
    if not folded.strip():
        return ()
    ranked: list[tuple[int, int, int, RuleMatch]] = []
    for order, rule in enumerate(rules):
        best = ""
        for m in rule.pattern.finditer(folded):
            if len(m.group()) > len(best):
                best = m.group()
        if best:
            ranked.append((-rule.priority, -len(best), order, RuleMatch(rule, best)))
    ranked.sort(key=lambda item: item[:3])
    return tuple(item[3] for item in ranked)


# --- the reference proxy's taxonomy files ------------------------------------------------------

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$")
# `synonyms:: a, b`, also as a list item or in backticks, as some files write it.
_DIRECTIVE = re.compile(
    r"^\s*(?:[-*+]\s+)?`?(synonyms|route|routing|priority)::\s*(.*?)`?\s*$", re.IGNORECASE
)


@frozen
class TaxonomyEntry:
    name: str
    synonyms: tuple[str, ...]
    route: str | None
    priority: int
    path: Path


def parse_taxonomy(text: str, path: Path) -> TaxonomyEntry:
    """One taxonomy file. Raises ConfigError (key `path:line`) for a malformed priority."""
    name = ""
    synonyms: list[str] = []
    route: str | None = None
    priority = DEFAULT_PRIORITY
    continuing = False
    for number, line in enumerate(text.splitlines(), 1):
        if continuing:
            stripped = line.strip().strip("`")
            if stripped and "::" not in stripped and not stripped.startswith("#"):
                synonyms.extend(_split(stripped))
                continuing = stripped.endswith(",")
                continue
            continuing = False
        if not name and (heading := _HEADING.match(line)):
            name = heading.group(1).strip().lower().replace(" ", "_")
            continue
        directive = _DIRECTIVE.match(line)
        if directive is None:
            continue
        key, value = directive.group(1).lower(), directive.group(2).strip()
        if key == "synonyms":
            synonyms.extend(_split(value))
            continuing = value.endswith(",")
        elif key in ("route", "routing"):
            route = route or value
        else:
            try:
                priority = int(value)
            except ValueError:
                raise ConfigError(
                    f"{path}:{number}", f"priority {value!r} is not an integer"
                ) from None
            if not 0 <= priority <= 100:
                raise ConfigError(f"{path}:{number}", f"priority {priority} is not within 0-100")
    name = name or path.stem.lower().replace(" ", "_")
    return TaxonomyEntry(name, tuple(dict.fromkeys(synonyms)), route, priority, path)


def _split(value: str) -> list[str]:
    return [s.strip().lower() for s in value.split(",") if s.strip()]


def read_taxonomy(directory: Path) -> list[TaxonomyEntry]:
    """Every `*.md` in the reference's sub-folders of `directory` (`routing_scenarios/`...), or
    in `directory` itself when it has none of them (the reference found 0 files when pointed
    at `routing_scenarios/` directly). Raises ConfigError for a missing or unreadable path."""
    if not directory.is_dir():
        raise ConfigError("router.taxonomy_dir", f"{directory}: no such directory")
    folders = [directory / f for f in TAXONOMY_FOLDERS if (directory / f).is_dir()]
    entries: list[TaxonomyEntry] = []
    for folder in folders or [directory]:
        for path in sorted(folder.glob("*.md")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError("router.taxonomy_dir", f"{path}: cannot read: {exc}") from None
            entries.append(parse_taxonomy(text, path))
    return entries


def taxonomy_rules(
    entries: Iterable[TaxonomyEntry],
    routes: Mapping[Scenario, Chain],
    resolve: Callable[[Target], Target | str],
) -> tuple[KeywordRule, ...]:
    """Rules for the entries that can route somewhere; the others are logged and left out.

    `resolve(target)` returns the configured target (provider names compare without case, as
    the reference lower-cased them) or why the config cannot send there. An
    entry without `route::` named after a configured route (`think_routing`, `think`) uses that
    route's chain, as the reference did for its scenario concepts.
    """
    rules: list[KeywordRule] = []
    for entry in entries:
        if not entry.synonyms:
            _log().info("taxonomy %s: no synonyms, no rule", entry.path)
            continue
        chain = _entry_chain(entry, routes, resolve)
        if chain is None:
            continue
        rules.append(
            compile_rule(
                entry.name,
                entry.synonyms,
                chain,
                priority=entry.priority,
                route=entry.route or entry.name,
                origin=str(entry.path),
            )
        )
    return tuple(rules)


def _entry_chain(
    entry: TaxonomyEntry,
    routes: Mapping[Scenario, Chain],
    resolve: Callable[[Target], Target | str],
) -> Chain | None:
    if entry.route is not None:
        provider, _, model = entry.route.partition(",")
        provider, model = provider.strip().lower(), model.strip()
        resolved = (
            resolve(Target(provider, model)) if provider and model else "expected 'provider, model'"
        )
        if isinstance(resolved, str):
            _log().warning("taxonomy %s: route %r skipped: %s", entry.path, entry.route, resolved)
            return None
        return (resolved,)
    for scenario, chain in routes.items():
        if entry.name in (scenario.value, f"{scenario.value}_routing"):
            return chain
    _log().info("taxonomy %s: no route:: line and no route named %r", entry.path, entry.name)
    return None
