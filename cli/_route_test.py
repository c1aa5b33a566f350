"""What `llmproxy route test` does: show how a request would be routed, and why.

Its arguments come from the Typer command (`cli.route`) or, on the console script's quick
path, from `cli._route_argv`; both build one `RouteTestArgs`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cli._config import load
from cli._models import check_model
from cli._output import dim, fail, print_json, stderr, stdout, styled
from proxy.affinity import Affinity
from proxy.capabilities import ModelCapabilities
from proxy.conversation import SESSION_HEADER, conversation_of
from proxy.errors import RoutingError
from proxy.frozen import frozen
from proxy.health import HealthRegistry
from proxy.model_catalog import load_catalog
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import ClientAPI, JSONObject

if TYPE_CHECKING:
    from cli._route_send import Sent


@frozen
class RouteTestArgs:
    """`route test`'s options, as the Typer command (`cli.route`) documents them."""

    model: str
    prompt: str = "Hello"
    thinking: bool = False
    tools: bool = False
    image: bool = False
    tokens: int | None = None
    as_json: bool = False
    send: bool = False
    stream: bool = False
    url: str | None = None
    api_key: str | None = None
    session: str | None = None
    turns: int = 1
    config: Path | None = None


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


def route_test_run(args: RouteTestArgs) -> None:
    """Print the decision (and, with `send`, perform it); exit status 1 when a send fails."""
    # Routing reads no provider key; sending in this process needs them.
    in_process = args.send and args.url is None
    settings = load(
        args.config,
        secrets=in_process,
        why="--send without --url calls the providers from this shell",
    )
    settings = settings.with_catalog(load_catalog(settings))
    checked = check_model(args.model, settings)
    if checked.warning:
        stderr().print(styled((f"warning: {checked.warning}", "yellow")))
    body = sample_request(
        args.model,
        args.prompt,
        thinking=args.thinking,
        tools=args.tools,
        image=args.image,
        tokens=args.tokens,
    )
    summary = summarize(body, ClientAPI.ANTHROPIC)
    try:
        decision = decide(summary, settings)
    except RoutingError as exc:
        fail(str(exc))
    headers = {SESSION_HEADER: args.session} if args.session is not None else {}
    conversation = conversation_of(body, headers, ClientAPI.ANTHROPIC)
    # This process has no conversation history: the first turn's view. `--send --turns N`
    # (or a daemon with --url) shows the later turns.
    health = HealthRegistry(settings.proxy.health)
    decision = Affinity.in_memory(settings.affinity).route(
        decision, conversation, settings.affinity, health
    )
    sent: list[Sent] = []
    if args.send:  # the HTTP client and the providers only when something is sent
        from cli._route_send import route_send

        sent = route_send(
            settings,
            body,
            stream=args.stream,
            url=args.url,
            api_key=args.api_key,
            turns=args.turns,
            session=args.session,
        )
    failed = bool(sent) and not all(s.ok for s in sent)
    if args.as_json:
        print_json(
            {
                "model": args.model,
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
            raise SystemExit(1)
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
        raise SystemExit(1)


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
