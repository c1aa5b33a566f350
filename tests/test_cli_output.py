"""The CLI's plain output (`cli._output`): styles only where a terminal shows them, and nothing
in a line ever read as markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from cli._output import Out, styled

LINE = styled(("error:", "bold red"), " [proxy] and [/x] stay as written")


def _written(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name in ("FORCE_COLOR", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    file = io.StringIO()
    Out(file).print(LINE)
    return file.getvalue()


def test_a_pipe_gets_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _written(monkeypatch) == "error: [proxy] and [/x] stay as written\n"


def test_a_terminal_gets_styles_and_no_color_keeps_only_bold_and_dim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = " [proxy] and [/x] stay as written\n"
    assert _written(monkeypatch, FORCE_COLOR="1") == "\x1b[1;31merror:\x1b[0m" + text
    assert _written(monkeypatch, FORCE_COLOR="1", NO_COLOR="1") == "\x1b[1merror:\x1b[0m" + text
    assert _written(monkeypatch, FORCE_COLOR="1", TERM="dumb") == "error:" + text


def test_a_line_in_a_table_is_drawn_by_rich_as_text() -> None:
    file = io.StringIO()
    table = Table("column")
    table.add_row(LINE)
    Console(file=file, width=80, markup=False).print(table)
    assert "error: [proxy] and [/x] stay as written" in file.getvalue()
