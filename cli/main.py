"""`llmproxy`: composes the command groups."""

from __future__ import annotations

import typer

from cli import route, serve

app = typer.Typer(
    name="llmproxy",
    help="A local LLM routing proxy: OpenAI and Anthropic APIs in, provider chains out.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.command("serve")(serve.serve_run)
app.add_typer(route.app, name="route")


def run() -> None:
    app()
