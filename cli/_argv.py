"""A command's plain arguments read without Typer, for the console script's quick paths
(`route test`, `serve`).

Importing Typer costs about 1.5x the interpreter's own start-up and about 1 MB that a daemon
would hold for as long as it runs. `read_argv` reads only what it plainly accepts, the way click
reads it (options before or after the positional arguments, `--name value`, `--name=value`,
`-c FILE`, `--`, the last of a repeated option) and returns None for anything else: `--help`,
an unknown option, a missing or invalid value, a wrong number of arguments, short options run
together. The Typer command then reads the same arguments, so help and every usage error are
its own; each quick path's tests check that its table and the Typer command's options agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FLAG, TEXT, NUMBER, FILE = "flag", "text", "number", "file"
Kind = str | range | tuple[str, ...]
"""FLAG, TEXT, NUMBER (any int), FILE, a `range` (an int within it) or a tuple of choices."""
Options = Mapping[str, tuple[str, Kind]]
"""Option -> (the field it sets, the kind of value it takes)."""


def read_argv(
    argv: Sequence[str], options: Options, positionals: int
) -> tuple[dict[str, Any], list[str]] | None:
    """The options' values by field and the positional arguments, or None when the Typer
    command should read `argv`."""
    values: dict[str, Any] = {}
    positional: list[str] = []
    at = 0
    while at < len(argv):
        token = argv[at]
        at += 1
        if token == "--":
            positional.extend(argv[at:])
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, equals, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        spec = options.get(name)
        if spec is None:
            return None
        field, kind = spec
        if kind == FLAG:
            if equals:
                return None
            values[field] = True
            continue
        if not equals:
            if at == len(argv):
                return None
            attached = argv[at]
            at += 1
        value = _value(kind, attached)
        if value is None:
            return None
        values[field] = value
    if len(positional) != positionals:
        return None
    return values, positional


def _value(kind: Kind, text: str) -> object | None:
    if isinstance(kind, tuple):
        return text if text in kind else None
    if kind == TEXT:
        return text
    if kind == FILE:
        # click's Path(dir_okay=False): a named file need not exist, but one that does must be
        # a readable file.
        if not text or (
            os.path.exists(text) and (os.path.isdir(text) or not os.access(text, os.R_OK))
        ):
            return None
        return Path(text)
    try:
        number = int(text)
    except ValueError:
        return None
    return number if kind == NUMBER or (isinstance(kind, range) and number in kind) else None
