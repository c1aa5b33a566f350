"""stdout is for data, stderr for status.

Both consoles have markup off: error texts name TOML tables (`[router]`, `[[providers]]`) and
print config values and model answers, and none of that may be read as rich markup (a `[/x]`
in a value would even crash the print). Styled output is built from `Text` pieces instead,
so only the style is ever interpreted, never the content.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.text import Text


def stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, markup=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of plain strings and (text, style) pairs; nothing in it is parsed."""
    return Text.assemble(*parts)


def dim(text: str) -> Text:
    return Text(text, style="dim")


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    stderr().print(styled(("error:", "bold red"), " ", message))
    raise typer.Exit(code)
