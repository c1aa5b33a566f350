"""`llmproxy route`: inspect routing decisions (`cli._route_test` does the work)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli._options import CONFIG_OPTION
from cli._route_test import RouteTestArgs, route_test_run

app = typer.Typer(help="Inspect routing decisions.", no_args_is_help=True)


@app.command("test")
def route_test(
    model: str = typer.Argument(
        ...,
        help="The model a client would send, e.g. `claude-haiku-4-5`, `thinking` or `zai,glm-5`.",
    ),
    prompt: str = typer.Option("Hello", "--prompt", help="The user text."),
    thinking: bool = typer.Option(False, "--thinking", help="Ask for reasoning."),
    tools: bool = typer.Option(False, "--tools", help="Include a tool definition."),
    image: bool = typer.Option(False, "--image", help="Include an image."),
    tokens: int | None = typer.Option(None, "--tokens", help="Pad the prompt to about N tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
    send: bool = typer.Option(
        False,
        "--send",
        help="Also send the request and show every "
        "attempt: status, error class, timing, and a verdict.",
    ),
    stream: bool = typer.Option(False, "--stream", help="With --send: stream the answer."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="With --send: go through the daemon at "
        "this URL (default: in-process, with per-attempt timing).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="LLMPROXY_API_KEY", help="Client key for --url."
    ),
    session: str | None = typer.Option(
        None,
        "--session",
        help="A conversation id (sent as "
        "x-llmproxy-session); default: the prompt identifies "
        "the conversation.",
    ),
    turns: int = typer.Option(
        1,
        "--turns",
        min=1,
        max=50,
        help="With --send: send N turns of "
        "one conversation and show what prompt-cache affinity decided.",
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Print the routing decision for a request: scenario, why, and the chain in order.
    With --send, perform it too (exit status 1 when it fails).

    \b
    Examples:
      llmproxy route test claude-haiku-4-5
      llmproxy route test thinking --tools
      llmproxy route test auto --tokens 80000 --json
      llmproxy route test claude-sonnet-4-5 --thinking --send
      llmproxy route test auto --send --url http://127.0.0.1:3456
      llmproxy route test auto --send --turns 3 --session demo
    """
    route_test_run(
        RouteTestArgs(
            model=model,
            prompt=prompt,
            thinking=thinking,
            tools=tools,
            image=image,
            tokens=tokens,
            as_json=as_json,
            send=send,
            stream=stream,
            url=url,
            api_key=api_key,
            session=session,
            turns=turns,
            config=config,
        )
    )
