"""`llmproxy route test`: show how a request would be routed, and why."""

from __future__ import annotations

from pathlib import Path

import typer

from cli._config import CONFIG_OPTION, load
from cli._output import fail, print_json, stdout
from proxy.errors import RoutingError
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import JSONObject, WireFormat

app = typer.Typer(help="Inspect routing decisions.", no_args_is_help=True)

_TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def sample_request(model: str, prompt: str, *, thinking: bool, tools: bool, image: bool,
                   tokens: int | None) -> JSONObject:
    """An Anthropic-format request with the features routing looks at."""
    text = prompt if tokens is None else prompt + " " + "word " * (tokens * 3 // 4)
    content: list[JSONObject] = [{"type": "text", "text": text}]
    if image:
        content.append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": _TINY_PNG}})
    body: JSONObject = {"model": model, "max_tokens": 1024,
                        "messages": [{"role": "user", "content": content}]}
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 4096}
    if tools:
        body["tools"] = [{"name": "get_weather", "description": "Weather for a city",
                          "input_schema": {"type": "object",
                                           "properties": {"city": {"type": "string"}},
                                           "required": ["city"]}}]
    return body


@app.command("test")
def route_test(
    model: str = typer.Argument(..., help="The model a client would send, e.g. `claude-haiku-4-5`, "
                                "`thinking` or `zai,glm-5`."),
    prompt: str = typer.Option("Hello", "--prompt", help="The user text."),
    thinking: bool = typer.Option(False, "--thinking", help="Ask for reasoning."),
    tools: bool = typer.Option(False, "--tools", help="Include a tool definition."),
    image: bool = typer.Option(False, "--image", help="Include an image."),
    tokens: int | None = typer.Option(None, "--tokens", help="Pad the prompt to about N tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Print the routing decision for a request: scenario, why, and the chain in order.

    Examples:
      llmproxy route test claude-haiku-4-5
      llmproxy route test thinking --tools
      llmproxy route test auto --tokens 80000 --json
    """
    settings = load(config)
    body = sample_request(model, prompt, thinking=thinking, tools=tools, image=image,
                          tokens=tokens)
    summary = summarize(body, WireFormat.ANTHROPIC)
    try:
        decision = decide(summary, settings)
    except RoutingError as exc:
        fail(str(exc))
    if as_json:
        print_json({
            "model": model,
            "scenario": decision.scenario.value,
            "explicit": decision.explicit,
            "mapping": decision.mapping,
            "reason": decision.reason,
            "token_estimate": summary.token_estimate,
            "chain": [str(t) for t in decision.chain],
            "skipped": [{"target": str(s.target), "reason": s.reason} for s in decision.skipped],
        })
        return
    out = stdout()
    out.print(f"[bold]scenario[/]  {decision.scenario.value}")
    out.print(f"[bold]why[/]       {decision.reason}")
    out.print(f"[bold]tokens[/]    ~{summary.token_estimate}")
    out.print("[bold]chain[/]")
    for position, target in enumerate(decision.chain, 1):
        out.print(f"  {position}. {target}")
    for skipped in decision.skipped:
        out.print(f"  [dim]skipped {skipped.target}: {skipped.reason}[/]")
