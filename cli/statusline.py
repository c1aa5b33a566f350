"""`llmproxy statusline`: one short line for Claude Code's status bar.

Claude Code runs the `statusLine` command after each message with the session's JSON on stdin;
the first line the command prints is shown. This prints what served the latest request:

    llmproxy: zai,glm-5 · think · codex 429 -> zai · $0.0031

It never fails loudly: without a journal or a request it says so in the line and exits 0.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from cli._config import journal_file
from cli._options import CONFIG_OPTION
from proxy.observe.cost import format_cost
from proxy.observe.journal import JournalEntry, Query, read_requests


def statusline_show(config: Path | None = CONFIG_OPTION) -> None:
    """The latest request's served model, route, hops and cost, for Claude Code's statusLine.

    Examples:
      llmproxy statusline < /dev/null
      in ~/.claude/settings.json:
      "statusLine": {"type": "command", "command": "llmproxy statusline"}
    """
    if not sys.stdin.isatty():
        sys.stdin.read()  # the session JSON: nothing in it is needed, but it must be drained
    sys.stdout.write(status_text(journal_file(config)) + "\n")


def status_text(path: Path) -> str:
    try:
        entries = read_requests(path, Query(limit=1)) if path.is_file() else []
    except sqlite3.Error:
        return "llmproxy: journal unreadable"
    if not entries:
        return "llmproxy: no requests yet"
    return line_for(entries[0])


def line_for(entry: JournalEntry) -> str:
    parts = [f"llmproxy: {entry.served or 'failed'}", entry.route or "-"]
    hops = len(entry.attempts) - 1
    if hops > 0:
        parts.append(entry.path)
    if entry.outcome != "ok":
        parts.append(f"{entry.status} {entry.error or entry.outcome}")
    parts.append(format_cost(entry.cost_usd))
    return " · ".join(parts)
