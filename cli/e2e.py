"""`llmproxy e2e`: run the end-to-end matrix of a config (or of the simulated deployment)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli._address import daemon_url
from cli._config import load
from cli._engine import probe_daemon
from cli._options import CONFIG_OPTION
from cli._output import dim, fail, stderr, stdout, styled
from proxy.config import Config
from proxy.e2e import (
    Case,
    Result,
    build_matrix,
    path_text,
    report_json,
    report_markdown,
    route_names,
    run_matrix,
)
from proxy.simulate.deployment import DEFAULT_SEED, running_daemon, simulated_deployment

ROUTE_OPTION = typer.Option(
    None,
    "--route",
    "-r",
    help="Only this route (repeatable): default, "
    "think, background, a mapping's name, or `mappings`.",
)
JSON_OPTION = typer.Option(
    None,
    "--json",
    dir_okay=False,
    help="Also write the results as JSON to this file (`-` for stdout).",
)
MARKDOWN_OPTION = typer.Option(
    None,
    "--markdown",
    dir_okay=False,
    help="Also write a Markdown report to this file (`-` for stdout).",
)


def e2e_run(
    simulate: bool = typer.Option(
        False,
        "--simulate",
        help="Test the built-in simulated reference deployment instead of your config (offline).",
    ),
    seed: int = typer.Option(
        DEFAULT_SEED,
        "--seed",
        help="With --simulate: the fault schedule's seed (the same seed replays the same faults).",
    ),
    routes: list[str] | None = ROUTE_OPTION,
    json_file: Path | None = JSON_OPTION,
    markdown_file: Path | None = MARKDOWN_OPTION,
    url: str | None = typer.Option(
        None,
        "--url",
        help="Test through the daemon at this URL "
        "(default: the configured daemon if it answers, else one "
        "started in-process).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="LLMPROXY_API_KEY", help="Client key for the daemon."
    ),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per test."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the daemon's log."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Test every route end to end, the way real clients use them.

    default and think: non-streaming and streaming, plain and with a tool; background and each
    model mapping: non-streaming plain. Each is triggered as a real client triggers it. Exit
    status 1 when any test fails.

    \b
    Examples:
      llmproxy e2e --simulate
      llmproxy e2e --simulate --seed 7 --markdown report.md
      llmproxy e2e --route think --route background
      llmproxy e2e --json - | jq '.results[] | select(.passed | not)'
    """
    to_stdout = "-" in (str(json_file), str(markdown_file))
    console = (stderr() if to_stdout else stdout()).rich
    if not console.is_terminal:  # a file or pipe: room for the whole table, no wrapping
        console = Console(file=console.file, width=160, highlight=False, markup=False)
    wanted = list(routes or [])
    with _daemon_logs(verbose):
        if simulate:
            meta: dict[str, Any] = {"deployment": "simulated", "seed": seed}
            results = asyncio.run(_simulated(seed, wanted, console, timeout))
        else:
            settings = load(config)
            _check_routes(settings, wanted)
            meta = {"deployment": settings.source}
            results = asyncio.run(_configured(settings, wanted, console, url, api_key, timeout))
    if not results:
        fail("no tests to run: the routes named with --route are not in the config")
    _write(
        json_file,
        orjson.dumps(report_json(results, meta), option=orjson.OPT_INDENT_2).decode() + "\n",
    )
    _write(markdown_file, report_markdown(results))
    passed = sum(r.passed for r in results)
    style = "bold green" if passed == len(results) else "bold red"
    stderr().print(styled((f"{passed}/{len(results)} passed", style)))
    if passed != len(results):
        raise typer.Exit(1)


def _check_routes(config: Config, wanted: Sequence[str]) -> None:
    known = [*route_names(config), "mappings"]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        fail(f"unknown route {', '.join(unknown)} (known: {', '.join(known)})")


async def _simulated(
    seed: int, wanted: list[str], console: Console, time_limit: float
) -> list[Result]:
    async with simulated_deployment(seed) as deployment:
        _check_routes(deployment.config, wanted)
        stderr().print(dim(f"simulated deployment (seed {seed}) at {deployment.url}"))
        cases = build_matrix(deployment.config, wanted)
        return await _run(deployment.url, None, cases, console, time_limit)


async def _configured(
    config: Config,
    wanted: list[str],
    console: Console,
    url: str | None,
    api_key: str | None,
    time_limit: float,
) -> list[Result]:
    key = api_key or (config.proxy.api_keys[0] if config.proxy.api_keys else None)
    cases = build_matrix(config, wanted)
    async with _daemon_for(config, url) as base:
        return await _run(base, key, cases, console, time_limit)


@contextlib.asynccontextmanager
async def _daemon_for(config: Config, url: str | None) -> AsyncIterator[str]:
    if url is not None:
        yield url
        return
    configured = daemon_url(config)
    async with aiohttp.ClientSession(trust_env=False) as session:
        found = await probe_daemon(session, configured)
    if found is not None:
        stderr().print(dim(f"testing through the daemon at {configured}"))
        yield configured
        return
    async with running_daemon(config, "127.0.0.1", 0) as local:
        stderr().print(
            dim(f"no daemon at {configured}; testing through one started here ({local})")
        )
        yield local


async def _run(
    base_url: str, api_key: str | None, cases: list[Case], console: Console, time_limit: float
) -> list[Result]:
    done: dict[int, Result] = {}
    running: list[int] = []
    index = {id(case): i for i, case in enumerate(cases)}

    def render() -> Table:
        return results_table(cases, done, running[-1] if running else None)

    live = Live(render(), console=console, refresh_per_second=8, auto_refresh=False)
    enabled = console.is_terminal

    def on_start(case: Case) -> None:
        running.append(index[id(case)])
        if enabled:
            live.update(render(), refresh=True)

    def on_result(result: Result) -> None:
        done[index[id(result.case)]] = result
        if enabled:
            live.update(render(), refresh=True)

    async with aiohttp.ClientSession(trust_env=False) as session:
        with live if enabled else contextlib.nullcontext():
            results = await run_matrix(
                session,
                base_url,
                cases,
                api_key=api_key,
                time_limit=time_limit,
                on_start=on_start,
                on_result=on_result,
            )
    if not enabled:
        console.print(render())
    return results


def results_table(cases: Sequence[Case], done: dict[int, Result], running: int | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    table.add_column("test", no_wrap=True)
    table.add_column("result", overflow="fold")
    table.add_column("served by", no_wrap=True)
    table.add_column("hops", justify="right")
    table.add_column("path", overflow="fold")
    table.add_column("latency", justify="right", no_wrap=True)
    for i, case in enumerate(cases):
        result = done.get(i)
        if result is None:
            state = Text("running…", style="yellow") if i == running else Text("·", style="dim")
            table.add_row(Text(case.name), state, "", "", "", "")
            continue
        verdict = (
            Text("PASS", style="bold green") if result.passed else Text("FAIL", style="bold red")
        )
        if not result.passed:
            verdict.append(f" {result.detail}", style="red")
        table.add_row(
            Text(case.name),
            verdict,
            Text(result.served_by or "—"),
            str(result.hops),
            Text(path_text(result.attempts)),
            f"{result.latency_ms:.0f} ms",
        )
    return table


def _write(target: Path | None, text: str) -> None:
    if target is None:
        return
    if str(target) == "-":
        stdout().file.write(text)
        return
    target.write_text(text, encoding="utf-8")
    stderr().print(dim(f"wrote {target}"))


@contextlib.contextmanager
def _daemon_logs(verbose: bool) -> Iterator[None]:
    """The in-process daemon logs every fallback; the table already says it all."""
    logger = logging.getLogger("llmproxy")
    previous = logger.level
    handler = logging.StreamHandler()  # bound to the current stderr
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if verbose:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
        logger.removeHandler(handler)
