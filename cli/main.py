"""`llmproxy`: the console script's entry point.

`llmproxy route test ...` and `llmproxy serve ...` run without importing Typer when
`cli._route_argv` or `cli._serve_argv` accepts their arguments: Typer's import alone is about
1.5x the interpreter's start-up (README, "Start-up of the CLI"), and a daemon would hold it, 1
MB, for as long as it runs (README, "Performance"). Everything else, their `--help` and usage
errors included, goes to the Typer app (`cli.app`), which `from cli.main import app` still
finds here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
APP_NAMES = ("COMMANDS", "Lazy", "all_commands", "app", "load_command")


def run() -> None:
    argv = sys.argv[1:]
    if argv[:2] == ["route", "test"]:
        from cli._route_argv import parse_route_test

        args = parse_route_test(argv[2:], os.environ)
        if args is not None:
            from cli._route_test import route_test_run

            _quick(route_test_run, args)
            return
    if argv[:1] == ["serve"]:
        from cli._serve_argv import parse_serve

        serve_args = parse_serve(argv[1:])
        if serve_args is not None:
            from cli._serve import serve

            _quick(serve, serve_args)
            return
    from cli.app import app

    app()


def _quick(command: Callable[[T], None], args: T) -> None:
    """The command, ending as the Typer command would end: Ctrl-C exits 130, and a reader
    that closed the pipe (`| head -1`) exits 1 without a traceback."""
    try:
        command(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # Python would meet the closed pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def __getattr__(name: str) -> Any:
    if name in APP_NAMES:
        import cli.app

        return getattr(cli.app, name)
    raise AttributeError(f"module 'cli.main' has no attribute {name!r}")
