"""`llmproxy providers status`: what is configured, what the daemon has seen, what answers now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from cli._address import daemon_url, health, url_option
from cli._config import load, load_reporting_unset
from cli._options import CONFIG_OPTION
from cli._output import dim, print_json, stderr, stdout
from cli.providers_refresh import providers_refresh
from proxy.config import GLOB_CHARS, Config, ProviderConfig
from proxy.errors import ConfigError, UpstreamError
from proxy.exchange import pair
from proxy.frozen import frozen
from proxy.providers.base import UpstreamRequest
from proxy.providers.registry import Upstreams
from proxy.types import ClientAPI, ErrorClass, JSONObject, ProviderFormat, Target

if TYPE_CHECKING:
    from proxy.security.http1 import Client

app = typer.Typer(help="Inspect and check the configured providers.", no_args_is_help=True)
app.command("refresh")(providers_refresh)

PROBE_PROMPT = "Reply with the word pong."
VERDICTS: dict[ErrorClass, str] = {
    ErrorClass.RATE_LIMITED: "rate limited",
    ErrorClass.QUOTA_EXHAUSTED: "quota exhausted",
    ErrorClass.AUTH: "auth failed",
    ErrorClass.NOT_FOUND: "model missing",
    # It answered, and said no to this particular request: the provider itself is up.
    ErrorClass.INVALID_REQUEST: "reachable",
    ErrorClass.CONTEXT_LENGTH: "reachable",
    ErrorClass.CONTENT_FILTER: "reachable",
}
STATE_RANK = {"closed": 0, "half-open": 1, "open": 2}


@frozen
class Probe:
    target: Target
    verdict: str
    status: int | None
    latency_ms: float
    detail: str = ""

    @property
    def reachable(self) -> bool:
        return self.verdict == "reachable"

    def to_json(self) -> JSONObject:
        return {
            "target": str(self.target),
            "verdict": self.verdict,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "detail": self.detail,
        }


@app.command("status")
def providers_status(
    probe: bool = typer.Option(
        False,
        "--probe",
        help="Send a tiny request to every configured "
        "(provider, model), concurrently, and classify the answer.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    url: str | None = typer.Option(
        None, "--url", help="The daemon to ask for live health (default: the configured address)."
    ),
    timeout: float = typer.Option(20.0, "--timeout", help="Seconds per probe."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show the providers, their keys and live health; --probe checks each model.

    One table: format, base URL, models, whether the key is set (never its value), and the
    live health the running daemon reports (breaker state, cooldown, success rate, latency).
    With --probe, exit status 1 when any target is not reachable.

    \b
    Examples:
      llmproxy providers status
      llmproxy providers status --probe
      llmproxy providers status --json | jq '.providers[] | select(.key == "missing")'
    """
    if probe:  # this process calls every provider: it needs their keys
        settings = load(config, why="--probe calls the providers from this shell")
        unset: dict[str, str] = {}
    else:
        found, unset = load_reporting_unset(config, secrets=False)
        settings = found if found is not None else load(config)
    address = url_option(url) if url else daemon_url(settings)
    live = health(address, api_key=next((k for k in settings.proxy.api_keys if k), None))
    probes = asyncio.run(_probe_all(settings, timeout, show=not as_json)) if probe else []
    rows = [_row(index, provider, live, unset) for index, provider in enumerate(settings.providers)]
    if as_json:
        print_json(
            {
                "daemon": live is not None,
                "providers": rows,
                **({"probes": [p.to_json() for p in probes]} if probe else {}),
            }
        )
    else:
        stdout().print(_table(rows))
        if probe:
            stdout().print(_probe_table(probes))
    if live is None and not as_json:
        stderr().print(
            dim(
                f"no daemon answered at {address}: live health unavailable "
                "(start one with `llmproxy serve --detach`)"
            )
        )
    if probe and not all(p.reachable for p in probes):
        raise typer.Exit(1)


async def _probe_all(config: Config, time_limit: float, *, show: bool) -> list[Probe]:
    # Only probing calls providers from this process, through a client guarded like the
    # daemon's (loaded only now).
    from proxy.security.outgoing import config_client

    async with config_client(config) as client:
        return await probe_all(client, config, time_limit, show=show)


def key_state(index: int, provider: ProviderConfig, unset: dict[str, str]) -> str:
    """`present`; `sign-in` / `no sign-in` (codex: a ChatGPT sign-in, no key); `none` (no key
    configured: a local model); `unset here` (its variable is not set in this shell, which the
    daemon's environment may well set)."""
    if provider.format is ProviderFormat.CODEX:
        from proxy.codex_auth import TokenStore, default_store_path

        store = Path(provider.auth_file).expanduser() if provider.auth_file else None
        try:
            tokens = TokenStore(store or default_store_path()).load()
        except ConfigError:
            tokens = None
        return "sign-in" if tokens is not None else "no sign-in"
    if f"providers[{index}].api_key" in unset:
        return "unset here"
    return "present" if provider.api_key else "none"


KEY_STYLES = {
    "present": "green",
    "sign-in": "green",
    "none": "dim",
    "unset here": "yellow",
    "no sign-in": "red",
}


def _row(
    index: int, provider: ProviderConfig, health: JSONObject | None, unset: dict[str, str]
) -> dict[str, Any]:
    targets = [
        t
        for t in (health or {}).get("targets", [])
        if isinstance(t, dict) and t.get("provider") == provider.name
    ]
    requests = sum(int(t.get("requests") or 0) for t in targets)
    rated = [
        (t["success_rate"], int(t.get("requests") or 0))
        for t in targets
        if isinstance(t.get("success_rate"), int | float)
    ]
    latencies = [t["latency_ms"] for t in targets if isinstance(t.get("latency_ms"), int | float)]
    state = max(
        (str(t.get("state", "closed")) for t in targets),
        key=lambda s: STATE_RANK.get(s, 0),
        default=None,
    )
    weight = sum(n for _, n in rated)
    return {
        "name": provider.name,
        "format": provider.format.value,
        "base_url": provider.api_base_url,
        "models": list(provider.models),
        "key": key_state(index, provider, unset),
        "state": state if health is not None else None,
        "cooldown_left": max((float(t.get("cooldown_left") or 0) for t in targets), default=0.0),
        "requests": requests,
        "success_rate": sum(r * n for r, n in rated) / weight if weight else None,
        "latency_ms": sum(latencies) / len(latencies) if latencies else None,
        "targets": targets,
    }


def _table(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in (
        "provider",
        "format",
        "base URL",
        "models",
        "key",
        "health",
        "success",
        "latency",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        key = Text(row["key"], style=KEY_STYLES.get(row["key"], ""))
        table.add_row(
            Text(row["name"], style="bold"),
            row["format"],
            Text(row["base_url"]),
            Text(", ".join(row["models"])),
            key,
            _health_text(row),
            "—" if row["success_rate"] is None else f"{row['success_rate']:.0%}",
            "—" if row["latency_ms"] is None else f"{row['latency_ms']:.0f} ms",
        )
    return table


def _health_text(row: dict[str, Any]) -> Text:
    state = row["state"]
    if state is None:
        return Text("—", style="dim")
    if not row["requests"] and state == "closed":
        return Text("no traffic", style="dim")
    style = {"closed": "green", "half-open": "yellow", "open": "red"}.get(state, "")
    text = Text(state, style=style)
    if row["cooldown_left"] > 0:
        text.append(f" (cooling {row['cooldown_left']:.0f}s)", style="yellow")
    return text


def _probe_table(probes: Sequence[Probe]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", title="probes", title_justify="left")
    for column in ("target", "verdict", "status", "latency", "detail"):
        table.add_column(column, overflow="fold")
    for p in probes:
        style = (
            "green"
            if p.reachable
            else "yellow"
            if p.verdict in ("rate limited", "quota exhausted")
            else "red"
        )
        table.add_row(
            Text(str(p.target)),
            Text(p.verdict, style=style),
            "—" if p.status is None else str(p.status),
            f"{p.latency_ms:.0f} ms",
            Text(p.detail[:120]),
        )
    return table


# --- probing ------------------------------------------------------------------------------------


def probe_targets(config: Config) -> list[tuple[ProviderConfig, Target]]:
    """Every concrete (provider, model) of the config; globs name no model to ask for."""
    return [
        (p, Target(p.name, m))
        for p in config.providers
        for m in p.models
        if not GLOB_CHARS.intersection(m)
    ]


async def probe_all(
    client: Client, config: Config, time_limit: float, *, show: bool = True
) -> list[Probe]:
    targets = probe_targets(config)
    upstreams = Upstreams(client, config.security.limits.max_answer_bytes)
    progress = Progress(
        TextColumn("probing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=stderr().rich,
        transient=True,
        disable=not show,
    )
    with progress:
        task = progress.add_task("", total=len(targets))

        async def one(provider: ProviderConfig, target: Target) -> Probe:
            result = await probe_target(upstreams, provider, target, time_limit)
            progress.update(task, advance=1, description=str(target))
            return result

        return list(await asyncio.gather(*(one(p, t) for p, t in targets)))


async def probe_target(
    upstreams: Upstreams, provider: ProviderConfig, target: Target, time_limit: float
) -> Probe:
    """One tiny non-streaming request, translated like any client request, classified like any
    upstream failure."""
    translators = pair(ClientAPI.OPENAI, provider.format)
    if translators is None or not upstreams.has(provider):
        return Probe(
            target, "unsupported", None, 0.0, f"format '{provider.format}' cannot be probed yet"
        )
    body = translators.request(
        {
            "model": target.model,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
        },
        target.model,
    )
    request = UpstreamRequest(target=target, provider=provider, body=body, stream=False)
    started = time.monotonic()
    try:
        async with asyncio.timeout(time_limit):
            await upstreams.transport(provider).complete(request)
    except UpstreamError as exc:  # before TimeoutError: its timeouts are TimeoutErrors too
        return Probe(
            target,
            VERDICTS.get(exc.error_class, "down"),
            exc.status,
            _ms(started),
            f"{exc.error_class.value}: {exc.message}",
        )
    except TimeoutError:
        return Probe(target, "down", None, _ms(started), f"no answer in {time_limit:.0f}s")
    return Probe(target, "reachable", 200, _ms(started))


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
