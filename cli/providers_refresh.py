"""`llmproxy providers refresh`: fetch the providers' model lists into the local cache.

Registered by `cli/providers.py` as `llmproxy providers refresh`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from cli._config import load
from cli._options import CONFIG_OPTION
from cli._output import dim, fail, print_json, stderr, stdout, styled
from proxy.config import Config
from proxy.model_catalog import RefreshReport, default_cache_dir, refresh_catalog
from proxy.security.outgoing import config_client

CACHE_DIR_OPTION = typer.Option(
    None,
    "--cache-dir",
    file_okay=False,
    help="Where to keep the model cache (default: the user cache dir).",
)


def providers_refresh(
    config: Path | None = CONFIG_OPTION,
    cache_dir: Path | None = CACHE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Fetch every provider's published model list into the local cache.

    Context windows, output caps, vision and tool support, prices and retirements that a
    provider publishes then take precedence over llmproxy's built-in table (config overrides
    still win). The daemon reads the cache when it starts; nothing is fetched otherwise.
    Exits 1 when a provider's list could not be fetched.

    \b
    Examples:
      llmproxy providers refresh
      llmproxy providers refresh --json
    """
    settings = load(config)
    try:
        report = asyncio.run(_refresh(settings, cache_dir or default_cache_dir()))
    except OSError as exc:
        fail(f"cannot write the model cache: {exc}")
    if as_json:
        providers = [p.to_json() for p in report.providers]
        print_json({"cache": str(report.path), "providers": providers})
    else:
        _render(report)
    if report.failed:
        raise typer.Exit(1)


async def _refresh(config: Config, cache_dir: Path) -> RefreshReport:
    async with config_client(config) as client:
        return await refresh_catalog(config, client, cache_dir)


def _render(report: RefreshReport) -> None:
    out = stdout()
    for p in report.providers:
        if p.ok:
            out.print(styled(("ok", "green"), f"       {p.provider}: {p.models} models"))
        elif p.skipped:
            out.print(dim(f"skipped  {p.provider}: {p.skipped}"))
        else:
            out.print(styled(("failed", "red"), f"   {p.provider}: {p.error}"))
        for model in p.unlisted:
            out.print(
                styled(
                    "  ",
                    ("warning", "yellow"),
                    f" {p.provider},{model} is configured "
                    "but not in the published list (retired, renamed or misspelled?)",
                )
            )
        for model in p.retired:
            out.print(
                styled(
                    "  ",
                    ("warning", "yellow"),
                    f" {p.provider},{model} is marked retired: routing will skip it",
                )
            )
    stderr().print(f"model cache written to {report.path}")
