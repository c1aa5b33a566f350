"""stdout is for data, stderr for status.

Lines are plain strings and `Line`s (text pieces, each with a style such as "bold red"), written
as text, with ANSI styles only on a terminal. rich is imported only when a table, progress bar
or live view is drawn (`Out.rich`): importing it costs about the interpreter's own start-up,
which a one-line command should not pay (tests/bench/bench_startup.py).

Nothing written is ever parsed: error texts name TOML tables (`[router]`, `[[providers]]`) and
print config values and model answers, and none of that may be read as markup (a `[/x]` in a
value would even crash rich's print). The rich consoles have markup off for the same reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

Piece = tuple[str, str]  # (text, style); "" is unstyled

# SGR codes of the style words the commands use; an unknown word is ignored, never an error.
SGR = {
    "bold": "1",
    "dim": "2",
    "italic": "3",
    "underline": "4",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
COLORS = frozenset({"red", "green", "yellow", "blue", "magenta", "cyan"})


class Line:
    """One line of styled text; its content is never interpreted."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: Iterable[Piece]) -> None:
        self.pieces = tuple(pieces)

    def __str__(self) -> str:
        return "".join(text for text, _ in self.pieces)

    def __repr__(self) -> str:
        return f"Line({self.pieces!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Line) and other.pieces == self.pieces

    def __hash__(self) -> int:
        return hash(self.pieces)

    def ansi(self, colors: bool = True) -> str:
        return "".join(_sgr(text, style, colors) for text, style in self.pieces)

    def __rich__(self) -> Text:
        """The same line in a rich table or live view."""
        from rich.text import Text

        return Text.assemble(*((text, style or "") for text, style in self.pieces))


def _sgr(text: str, style: str, colors: bool) -> str:
    codes = [SGR[w] for w in style.split() if w in SGR and (colors or w not in COLORS)]
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes and text else text


class Out:
    """A stream that writes `str`s and `Line`s itself and anything else (a table) through rich."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self._rich: Console | None = None
        self._styles: bool | None = None

    @property
    def styles(self) -> bool:
        """Styles on a terminal (as rich decides: `TERM=dumb` has none, `FORCE_COLOR` forces
        them); `NO_COLOR` keeps bold and dim but drops colours."""
        if self._styles is None:
            env = os.environ
            terminal = env.get("FORCE_COLOR") or _isatty(self.file)
            self._styles = bool(terminal) and env.get("TERM", "") not in ("dumb", "unknown")
        return self._styles

    @property
    def rich(self) -> Console:
        """A rich console on the same stream, for tables, progress bars and live views."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(file=self.file, highlight=False, soft_wrap=True, markup=False)
        return self._rich

    def print(self, *objects: object, style: str = "", end: str = "\n") -> None:
        if not all(isinstance(o, str | Line) for o in objects):
            self.rich.print(*objects, style=style or None, end=end)
            return
        colors = "NO_COLOR" not in os.environ
        parts = (
            (o if isinstance(o, Line) else Line([(str(o), style)])).ansi(colors)
            if self.styles
            else str(o)
            for o in objects
        )
        self.file.write(" ".join(parts) + end)
        self.file.flush()


def _isatty(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def stdout() -> Out:
    return Out(sys.stdout)


def stderr() -> Out:
    return Out(sys.stderr)


def styled(*parts: str | Piece) -> Line:
    """A line of plain strings and (text, style) pairs; nothing in it is parsed."""
    return Line((part, "") if isinstance(part, str) else part for part in parts)


def dim(text: str) -> Line:
    return Line([(text, "dim")])


def print_json(value: Any) -> None:
    import orjson  # only for --json: its import loads dataclasses, uuid and datetime

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    stderr().print(styled(("error:", "bold red"), " ", message))
    raise SystemExit(code)
