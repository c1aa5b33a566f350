"""`llmproxy route test`'s arguments read without Typer, for the console script's quick path.

Importing Typer costs about 1.5x the interpreter's own start-up, and `route test` has a budget
of 4x (README, "Start-up of the CLI"). This reads only what it plainly accepts, the way click
reads it (options before or after MODEL, `--name value`, `--name=value`, `-c FILE`, `--`, the
last of a repeated option, `$LLMPROXY_API_KEY` for `--api-key`) and returns None for anything
else: `--help`, an unknown option, a missing or invalid value, a second argument. The Typer
command (`cli.route`) then reads the same arguments, so help and every usage error are its
own. `tests/test_cli_route_argv.py` checks that this table and the Typer command's options
agree, and that both read the same arguments into the same `RouteTestArgs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cli._route_test import RouteTestArgs

FLAG, TEXT, NUMBER, TURNS, FILE = "flag", "text", "number", "turns", "file"
OPTIONS: Mapping[str, tuple[str, str]] = {
    "--prompt": ("prompt", TEXT),
    "--thinking": ("thinking", FLAG),
    "--tools": ("tools", FLAG),
    "--image": ("image", FLAG),
    "--tokens": ("tokens", NUMBER),
    "--json": ("as_json", FLAG),
    "--send": ("send", FLAG),
    "--stream": ("stream", FLAG),
    "--url": ("url", TEXT),
    "--api-key": ("api_key", TEXT),
    "--session": ("session", TEXT),
    "--turns": ("turns", TURNS),
    "--config": ("config", FILE),
    "-c": ("config", FILE),
}
"""Option -> (RouteTestArgs field, kind of value)."""
ENVVARS: Mapping[str, str] = {"api_key": "LLMPROXY_API_KEY"}
TURNS_RANGE = range(1, 51)


def parse_route_test(argv: Sequence[str], env: Mapping[str, str]) -> RouteTestArgs | None:
    """The arguments after `route test`, or None when the Typer command should read them."""
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
        spec = OPTIONS.get(name)
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
    if len(positional) != 1:
        return None
    for field, variable in ENVVARS.items():
        if field not in values and env.get(variable):
            values[field] = env[variable]
    return RouteTestArgs(model=positional[0], **values)


def _value(kind: str, text: str) -> object | None:
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
    return number if kind == NUMBER or number in TURNS_RANGE else None
