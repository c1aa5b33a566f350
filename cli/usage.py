"""`llmproxy usage`: tokens and cost from the journal, by provider, model, route or day."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import typer

from cli._journal import SINCE_HELP, existing_journal, journal_error, parse_since
from cli._options import CONFIG_OPTION
from cli._output import print_json
from proxy.observe.cost import format_cost
from proxy.observe.journal import USAGE_GROUPS, UsageRow, usage_summary

COLUMNS = ("requests", "failed", "input", "cache read", "cache write", "output", "cost")


def usage_show(
    by: str = typer.Option("provider", "--by", help="Group by provider, model, route or day."),
    since: str | None = typer.Option(None, "--since", help=SINCE_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON: one object per group."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Tokens and cost of the recorded requests (prices from the capability table and config).

    Examples:
      llmproxy usage
      llmproxy usage --by day --since 7d
      llmproxy usage --by model --json
    """
    if by not in USAGE_GROUPS:
        raise typer.BadParameter(
            f"{by!r}: choose one of {', '.join(USAGE_GROUPS)}", param_hint="--by"
        )
    path = existing_journal(config)
    try:
        rows = usage_summary(path, by, parse_since(since))
    except sqlite3.Error as exc:
        journal_error(path, exc)
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        sys.stderr.write("no requests recorded in that time\n")
        return
    total = UsageRow(
        "total",
        *(
            sum(getattr(r, f) for r in rows)
            for f in (
                "requests",
                "failed",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "cost_usd",
                "unpriced",
            )
        ),
    )
    table = [[by, *COLUMNS]] + [_cells(r) for r in [*rows, total]]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        first = line[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))
        sys.stdout.write(f"{first}  {rest}\n")
    if total.unpriced:
        sys.stderr.write(
            f"{total.unpriced} served request(s) have no known price and are not "
            "in the cost; set price_in/price_out under [providers.capabilities]\n"
        )


def _cells(r: UsageRow) -> list[str]:
    return [
        r.name,
        str(r.requests),
        str(r.failed),
        f"{r.input_tokens:,}",
        f"{r.cache_read_tokens:,}",
        f"{r.cache_write_tokens:,}",
        f"{r.output_tokens:,}",
        format_cost(r.cost_usd),
    ]
