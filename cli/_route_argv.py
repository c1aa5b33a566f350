"""`llmproxy route test`'s arguments read without Typer, for the console script's quick path.

`route test` has a start-up budget of 4x the interpreter's (README, "Start-up of the CLI") and
Typer's import alone costs about 1.5x. `cli._argv.read_argv` reads what it plainly accepts and
leaves the rest (help, usage errors) to the Typer command (`cli.route`), with
`$LLMPROXY_API_KEY` for `--api-key` as Typer reads it. `tests/test_cli_route_argv.py` checks
that this table and the Typer command's options agree, and that both read the same arguments
into the same `RouteTestArgs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cli._argv import FILE, FLAG, NUMBER, TEXT, Options, read_argv
from cli._route_test import RouteTestArgs

TURNS = range(1, 51)
OPTIONS: Options = {
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
ENVVARS: Mapping[str, str] = {"api_key": "LLMPROXY_API_KEY"}

__all__ = ["ENVVARS", "FILE", "FLAG", "NUMBER", "OPTIONS", "TEXT", "TURNS", "parse_route_test"]


def parse_route_test(argv: Sequence[str], env: Mapping[str, str]) -> RouteTestArgs | None:
    """The arguments after `route test`, or None when the Typer command should read them."""
    read = read_argv(argv, OPTIONS, positionals=1)
    if read is None:
        return None
    values, (model,) = read
    for field, variable in ENVVARS.items():
        if field not in values and env.get(variable):
            values[field] = env[variable]
    return RouteTestArgs(model=model, **values)
