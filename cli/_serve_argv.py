"""`llmproxy serve`'s arguments read without Typer, for the console script's quick path.

A daemon holds every module it imported for as long as it runs, and Typer with its vendored
click is about 1 MB of them. `cli._argv.read_argv` reads what it plainly accepts and leaves the
rest (help, usage errors) to the Typer command (`cli.serve`). `tests/test_cli_serve_argv.py`
checks that this table and the Typer command's options agree, and that both read the same
arguments into the same `ServeArgs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from cli._argv import FILE, FLAG, NUMBER, TEXT, Options, read_argv
from cli._serve import LogFormat, LogLevel, ServeArgs

WORKERS = range(1, 65)
OPTIONS: Options = {
    "--config": ("config", FILE),
    "-c": ("config", FILE),
    "--host": ("host", TEXT),
    "--port": ("port", NUMBER),
    "-p": ("port", NUMBER),
    "--log-level": ("log_level", tuple(LogLevel)),
    "--log-format": ("log_format", tuple(LogFormat)),
    "--simulate": ("simulate", FLAG),
    "--seed": ("seed", NUMBER),
    "--detach": ("detach", FLAG),
    "-d": ("detach", FLAG),
    "--workers": ("workers", WORKERS),
    "-w": ("workers", WORKERS),
    "--watch": ("watch", FLAG),
}


def parse_serve(argv: Sequence[str]) -> ServeArgs | None:
    """The arguments after `serve`, or None when the Typer command should read them."""
    read = read_argv(argv, OPTIONS, positionals=0)
    return None if read is None else ServeArgs(**read[0])
