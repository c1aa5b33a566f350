"""`llmproxy logs`: the recent requests from the journal, like `llm logs`."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import orjson
import typer

from cli._journal import SINCE_HELP, clock, existing_journal, journal_error, parse_since
from cli._options import CONFIG_OPTION
from cli._output import print_json
from proxy.observe.cost import format_cost
from proxy.observe.journal import JournalEntry, Query, read_requests

FOLLOW_POLL_SECONDS = 0.5
FOLLOW_POLL_ROWS = 1000
COLUMNS = (
    "time",
    "id",
    "route",
    "attempts",
    "served by",
    "status",
    "tokens in/out",
    "cost",
    "total",
)


def logs_show(
    count: int = typer.Option(20, "-n", "--count", min=1, help="How many requests."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new requests (Ctrl-C stops)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="JSON with every attempt; with --follow, one object per line."
    ),
    since: str | None = typer.Option(None, "--since", help=SINCE_HELP),
    route: str | None = typer.Option(
        None, "--route", help="Only this route (default, think, background...)."
    ),
    failed: bool = typer.Option(
        False, "--failed", help="Only requests that failed or needed a fallback."
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Recent requests: route, attempts path (zai 500 -> cerebras), served by, tokens, cost.

    Examples:
      llmproxy logs -n 50
      llmproxy logs --failed --since 2h
      llmproxy logs --follow --json
    """
    path = existing_journal(config)
    query = Query(limit=count, since=parse_since(since), route=route, failed=failed)
    try:
        entries = read_requests(path, query)
        if as_json and not follow:
            print_json([e.to_json() for e in entries])
            return
        _print(entries, as_json, header=True)
        last = max((e.row for e in entries), default=0)
        fresh: list[JournalEntry] = []
        while follow:
            if len(fresh) < FOLLOW_POLL_ROWS:  # a full poll: more are waiting, read on at once
                time.sleep(FOLLOW_POLL_SECONDS)
            fresh = read_requests(
                path,
                Query(
                    limit=FOLLOW_POLL_ROWS,
                    after_row=last,
                    since=query.since,
                    route=route,
                    failed=failed,
                ),
            )
            if fresh:
                last = max(e.row for e in fresh)
                _print(fresh, as_json, header=False)
    except sqlite3.Error as exc:
        journal_error(path, exc)
    except KeyboardInterrupt:
        return


def _print(entries: list[JournalEntry], as_json: bool, *, header: bool) -> None:
    if as_json:
        for entry in entries:
            sys.stdout.write(orjson_line(entry))
        sys.stdout.flush()
        return
    if header and not entries:
        sys.stderr.write("no requests recorded yet\n")
        return
    table = [_cells(e) for e in entries]
    if header:
        table.insert(0, list(COLUMNS))
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    if not header:  # follow mode: keep the columns of the header printed first
        widths = [max(w, len(c)) for w, c in zip(widths, COLUMNS, strict=True)]
    for cells in table:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
    sys.stdout.flush()


def orjson_line(entry: JournalEntry) -> str:
    return orjson.dumps(entry.to_json()).decode() + "\n"


def _cells(e: JournalEntry) -> list[str]:
    status = str(e.status) if e.outcome == "ok" else f"{e.status} {e.error or e.outcome}"
    tokens = e.input_tokens + e.cache_read_tokens + e.cache_write_tokens
    return [
        clock(e.ts),
        e.id,
        e.route or "-",
        e.path or "-",
        e.served or "-",
        status,
        f"{tokens}/{e.output_tokens}",
        format_cost(e.cost_usd),
        _duration(e.total_ms),
    ]


def _duration(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 1000 else f"{ms / 1000:.1f}s"
