"""What `logs`, `usage` and `statusline` share: reading the journal and naming times."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import typer

from cli._config import journal_file
from cli._output import fail

SINCE_HELP = "Only requests since T: 30m, 2h, 7d, or a date/time (2026-12-01T09:00)."
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """Epoch seconds for `30m`, `2h`, `7d`, `1w` ago, or a local ISO date/time."""
    if text is None:
        return None
    now = time.time() if now is None else now
    if match := _AGO.match(text):
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use an age (30m, 2h, 7d) or a date/time (2026-12-01T09:00)",
            param_hint="--since",
        ) from None


def existing_journal(config: Path | None) -> Path:
    path = journal_file(config)
    if not path.is_file():
        fail(
            f"no request journal at {path} yet: requests are recorded while `llmproxy serve` "
            "runs (see [journal] in the config)",
            code=1,
        )
    return path


def journal_error(path: Path, exc: sqlite3.Error) -> None:
    fail(f"cannot read the request journal {path}: {exc}", code=1)


def clock(ts: float) -> str:
    """Local time: `14:03:12` today, `12-01 14:03` on other days."""
    moment = time.localtime(ts)
    if time.strftime("%Y-%m-%d", moment) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%m-%d %H:%M", moment)
