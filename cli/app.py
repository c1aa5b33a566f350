"""The Typer app of `llmproxy` (started by `cli.main.run`): composes the command groups.

Each command's module is imported only when that command runs (`llmproxy chat` never loads the
daemon, `llmproxy status` never loads routing), so the table below carries what `--help` lists
without importing anything. A test checks that each summary is its command's first help line.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo

from proxy.frozen import frozen

Command = Any  # click's, which typer vendors in recent versions and imports in older ones
PYTHON_TYPE = re.compile(r"<(str|int|float|list\[[^>]*\])>(\.\.\.)?")
PYTHON_TYPES = {"str", "int", "float", "text", "integer"}  # click's own names for these too
PASSTHROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": ["--help"],
}


@frozen
class Lazy:
    module: str
    attribute: str  # a command function, or a Typer app for a group
    summary: str
    context_settings: dict[str, Any] | None = None


COMMANDS: dict[str, Lazy] = {
    "serve": Lazy(
        "cli.serve", "serve_run", "Run the proxy daemon (foreground by default, e.g. under systemd)"
    ),
    "status": Lazy("cli.daemon", "daemon_status", "Show whether the daemon runs and answers"),
    "stop": Lazy(
        "cli.daemon",
        "daemon_stop",
        "Stop the daemon: the one `llmproxy serve "
        "--detach` started, or one running in the foreground on this machine",
    ),
    "reload": Lazy(
        "cli.daemon",
        "daemon_reload",
        "Re-read the running daemon's config file without a restart (it is sent SIGHUP)",
    ),
    "chat": Lazy(
        "cli.chat", "chat", "Chat with your routes: one-shot, piped, or an interactive session"
    ),
    "code": Lazy(
        "cli.launch",
        "launch_code",
        "Run Claude Code through llmproxy (starts the daemon if none answers)",
        PASSTHROUGH,
    ),
    "codex": Lazy(
        "cli.launch",
        "launch_codex",
        "Run the Codex CLI through llmproxy (starts the daemon if none answers)",
        PASSTHROUGH,
    ),
    "route": Lazy("cli.route", "app", "Inspect routing decisions"),
    "providers": Lazy("cli.providers", "app", "Inspect and check the configured providers"),
    "e2e": Lazy("cli.e2e", "e2e_run", "Test every route end to end, the way real clients use them"),
    "auth": Lazy("cli.auth", "app", "Manage the ChatGPT sign-in of codex providers"),
    "init": Lazy("cli.init", "init_config", "Write a commented starter config"),
    "logs": Lazy(
        "cli.logs",
        "logs_show",
        "Recent requests: route, attempts path (zai 500 -> cerebras), served by, tokens, cost",
    ),
    "usage": Lazy(
        "cli.usage",
        "usage_show",
        "Tokens and cost of the recorded requests (prices from the capability table and config)",
    ),
    "statusline": Lazy(
        "cli.statusline",
        "statusline_show",
        "The latest request's served model, route, hops and cost, for Claude Code's statusLine",
    ),
}


class _Listed(TyperCommand):
    """What `--help` lists for a command that has not been imported."""


class LazyGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _hide_flag_types(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        lazy = COMMANDS.get(cmd_name)
        return (
            None if lazy is None else _Listed(cmd_name, short_help=lazy.summary, help=lazy.summary)
        )

    def loaded_commands(self) -> dict[str, Command]:
        return all_commands()

    def resolve_command(
        self, ctx: Any, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, _, rest = super().resolve_command(ctx, args)
        return name, None if name is None else load_command(name), rest


def load_command(name: str) -> Command:
    """The real command: its module imported now."""
    lazy = COMMANDS[name]
    target = getattr(importlib.import_module(lazy.module), lazy.attribute)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)
        command.name = name
    else:
        command = typer.main.get_command_from_info(
            CommandInfo(name=name, callback=target, context_settings=lazy.context_settings),
            pretty_exceptions_short=True,
            rich_markup_mode=None,
        )
    _hide_flag_types(command)
    return command


def _hide_flag_types(command: Command) -> None:
    """A flag takes no value, so help shows no `<bool>` type for it (`--help` included, which
    click makes on demand)."""
    command.rich_markup_mode = None  # sub-apps too: see the note at `app`
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.param_type_name == "option":
            if param.metavar is None and param.type.name in PYTHON_TYPES:
                param.metavar = str(param.name).upper()  # `--url URL`, not `--url <str>`
        elif hasattr(param, "display_type_rich"):  # typer >= 0.29 types arguments too
            param.display_type_rich = _without_python_types(param)
    make_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for child in getattr(command, "commands", {}).values():
        _hide_flag_types(child)


def _without_python_types(param: Any) -> Any:
    """An argument shows its name alone (`args...`, not `args... <list[str]>`); files and
    choices stay as they are."""
    shown = param.display_type_rich

    def display(ctx: Any) -> str | None:
        text: str | None = shown(ctx)
        return None if text and PYTHON_TYPE.fullmatch(text) else text

    return display


def all_commands() -> dict[str, Command]:
    """Every command, imported (for the completions generator and the tests)."""
    return {name: load_command(name) for name in COMMANDS}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("llmproxy")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        typer.echo(f"llmproxy {number}")
        raise typer.Exit()


app = typer.Typer(
    name="llmproxy",
    help="A local LLM routing proxy: OpenAI and Anthropic APIs in, provider chains out.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    # Plain help: typer's rich help loads rich's Markdown and traceback machinery, which
    # alone takes several times the interpreter's own start-up (tests/bench/bench_startup.py).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    show_version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """A local LLM routing proxy: OpenAI and Anthropic APIs in, provider chains out."""
