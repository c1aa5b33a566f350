"""`llmproxy`: composes the command groups."""

from __future__ import annotations

import typer

from cli import auth, chat, daemon, e2e, init, logs, providers, route, serve, statusline, usage

app = typer.Typer(
    name="llmproxy",
    help="A local LLM routing proxy: OpenAI and Anthropic APIs in, provider chains out.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.command("serve")(serve.serve_run)
app.add_typer(route.app, name="route")
app.command("chat")(chat.chat)
app.command("e2e")(e2e.e2e_run)
app.command("init")(init.init_config)
app.command("status")(daemon.daemon_status)
app.command("stop")(daemon.daemon_stop)
app.add_typer(providers.app, name="providers")
app.add_typer(auth.app, name="auth")
app.command("logs")(logs.logs_show)
app.command("usage")(usage.usage_show)
app.command("statusline")(statusline.statusline_show)


def run() -> None:
    app()
