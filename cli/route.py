"""`llmproxy route test`: show how a request would be routed, and why."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli._config import CONFIG_OPTION, load
from cli._models import check_model
from cli._output import dim, fail, print_json, stderr, stdout, styled
from proxy.affinity import Affinity
from proxy.capabilities import ModelCapabilities
from proxy.conversation import SESSION_HEADER, conversation_of
from proxy.errors import RoutingError
from proxy.health import HealthRegistry
from proxy.model_catalog import load_catalog
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import ClientAPI, JSONObject

if TYPE_CHECKING:
    from cli._route_send import Sent

app = typer.Typer(help="Inspect routing decisions.", no_args_is_help=True)

_TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def sample_request(
    model: str, prompt: str, *, thinking: bool, tools: bool, image: bool, tokens: int | None
) -> JSONObject:
    """An Anthropic-format request with the features routing looks at; `tokens`: padded so
    that the router's own estimate of it is about that many tokens."""
    build = partial(_request, model, thinking=thinking, tools=tools, image=image)
    if tokens is None:
        return build(prompt)
    # The estimate is linear in the padding, so two measurements give the length to use.
    sample = 1000
    base = _estimate(build(prompt))
    per_word = (_estimate(build(prompt + " word" * sample)) - base) / sample
    words = max(0, round((tokens - base) / per_word)) if per_word > 0 else 0
    return build(prompt + " word" * words)


def _estimate(body: JSONObject) -> int:
    return summarize(body, ClientAPI.ANTHROPIC).token_estimate


def _request(model: str, text: str, *, thinking: bool, tools: bool, image: bool) -> JSONObject:
    content: list[JSONObject] = [{"type": "text", "text": text}]
    if image:
        content.append(
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": _TINY_PNG},
            }
        )
    body: JSONObject = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    }
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 4096}
    if tools:
        body["tools"] = [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ]
    return body


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
    # Routing reads no provider key; sending in this process needs them.
    in_process = send and url is None
    settings = load(
        config, secrets=in_process, why="--send without --url calls the providers from this shell"
    )
    settings = settings.with_catalog(load_catalog(settings))
    checked = check_model(model, settings)
    if checked.warning:
        stderr().print(styled((f"warning: {checked.warning}", "yellow")))
    body = sample_request(model, prompt, thinking=thinking, tools=tools, image=image, tokens=tokens)
    summary = summarize(body, ClientAPI.ANTHROPIC)
    try:
        decision = decide(summary, settings)
    except RoutingError as exc:
        fail(str(exc))
    headers = {SESSION_HEADER: session} if session is not None else {}
    conversation = conversation_of(body, headers, ClientAPI.ANTHROPIC)
    # This process has no conversation history: the first turn's view. `--send --turns N`
    # (or a daemon with --url) shows the later turns.
    health = HealthRegistry(settings.proxy.health)
    decision = Affinity.in_memory(settings.affinity).route(
        decision, conversation, settings.affinity, health
    )
    sent: list[Sent] = []
    if send:  # the HTTP client and the providers only when something is sent
        from cli._route_send import route_send

        sent = route_send(
            settings, body, stream=stream, url=url, api_key=api_key, turns=turns, session=session
        )
    failed = bool(sent) and not all(s.ok for s in sent)
    if as_json:
        print_json(
            {
                "model": model,
                "scenario": decision.scenario.value,
                "explicit": decision.explicit,
                "mapping": decision.mapping,
                "route": decision.route,
                "reason": decision.reason,
                "token_estimate": summary.token_estimate,
                "chain": [str(t) for t in decision.chain],
                "skipped": [
                    {"target": str(s.target), "reason": s.reason} for s in decision.skipped
                ],
                "rule": decision.rule,
                "unfit": [{"target": str(s.target), "reason": s.reason} for s in decision.unfit],
                "capabilities": {
                    str(t): settings.capabilities(t).to_json()
                    for t in (*decision.chain, *(s.target for s in decision.skipped))
                },
                "conversation": conversation.source if conversation is not None else None,
                "affinity": decision.affinity,
                **({"send": sent[0].to_json()} if len(sent) == 1 else {}),
                **({"turns": [s.to_json() for s in sent]} if len(sent) > 1 else {}),
            }
        )
        if failed:
            raise typer.Exit(1)
        return
    out = stdout()
    out.print(styled(("scenario", "bold"), f"  {decision.scenario.value}"))
    out.print(styled(("why", "bold"), f"       {decision.reason}"))
    out.print(styled(("route", "bold"), f"     {decision.route}"))
    out.print(styled(("tokens", "bold"), f"    ~{summary.token_estimate}"))
    if decision.rule is not None:
        out.print(styled(("rule", "bold"), f"      {decision.rule}"))
    out.print(styled(("chain", "bold")))
    for position, target in enumerate(decision.chain, 1):
        caps = capability_line(settings.capabilities(target))
        out.print(styled(f"  {position}. {target}  ", (caps, "dim")))
    for skipped in decision.skipped:
        out.print(dim(f"  skipped {skipped.target}: {skipped.reason}"))
    for unfit in decision.unfit:
        out.print(
            styled("  ", ("unfit", "yellow"), f" {unfit.target}: {unfit.reason} (tried anyway)")
        )
    if conversation is not None and decision.affinity is not None:
        out.print(
            styled(
                ("affinity", "bold"),
                f"  {decision.affinity} ",
                (f"(conversation from {conversation.source})", "dim"),
            )
        )
    if sent:
        from cli._route_send import print_sent

        for turn, one in enumerate(sent, 1):
            print_sent(one, turn if len(sent) > 1 else None)
    if failed:
        raise typer.Exit(1)


def capability_line(caps: ModelCapabilities) -> str:
    """`200k window, 128k out, tools, text-only, $1.00/$3.20 per M (approx)`: what is known."""
    parts: list[str] = []
    if caps.context_window is not None:
        parts.append(f"{_k(caps.context_window)} window")
    if caps.max_output_tokens is not None:
        parts.append(f"{_k(caps.max_output_tokens)} out")
    if caps.tools is not None:
        parts.append("tools" if caps.tools else "no tools")
    if caps.vision is not None:
        parts.append("vision" if caps.vision else "text-only")
    if caps.price_in is not None and caps.price_out is not None:
        parts.append(f"${caps.price_in:.2f}/${caps.price_out:.2f} per M")
    if not parts:
        return "(capabilities unknown)"
    return "(" + ", ".join(parts) + (", approx" if caps.approximate else "") + ")"


def _k(tokens: int) -> str:
    return f"{tokens // 1000}k" if tokens >= 10_000 else str(tokens)
