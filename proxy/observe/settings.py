"""The `[journal]` and `[metrics]` settings, read from the config file by `proxy.config`.

[journal]                         the request journal (SQLite, WAL)
enabled = true
path = "..."                      default: requests.db in the state dir
retention_days = 30               rows older than this are deleted
max_mb = 100                      oldest rows go first when the file grows past this
flush_ms = 200                    how often queued records are written, in one transaction

[metrics]
enabled = true                    false: no `GET /metrics` (404) and nothing counted for it
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from proxy.frozen import frozen

if TYPE_CHECKING:
    from proxy.config.reader import TableReader

JOURNAL_FILE = "requests.db"
_KEYS = ("enabled", "path", "retention_days", "max_mb", "flush_ms")
_METRICS_KEYS = ("enabled",)


@frozen
class JournalSettings:
    enabled: bool = True
    path: str = ""
    retention_days: int = 30
    max_mb: int = 100
    flush_seconds: float = 0.2

    def location(self, state_dir: Path | None) -> Path | None:
        """Where the journal lives: the configured path, else the state dir's file; None when
        it is off or the app was given neither (tests, embedded use)."""
        if not self.enabled:
            return None
        if self.path:
            return Path(self.path).expanduser()
        return None if state_dir is None else state_dir / JOURNAL_FILE


def parse_journal(top: TableReader) -> JournalSettings:
    t = top.table("journal", _KEYS)
    if t is None:
        return JournalSettings()
    return JournalSettings(
        enabled=t.boolean("enabled", True),
        path=t.string("path", ""),
        retention_days=t.integer("retention_days", 30, low=1, high=36500),
        max_mb=t.integer("max_mb", 100, low=1, high=1_000_000),
        flush_seconds=t.integer("flush_ms", 200, low=10, high=60_000) / 1000,
    )


@frozen
class MetricsSettings:
    enabled: bool = True


def parse_metrics(top: TableReader) -> MetricsSettings:
    t = top.table("metrics", _METRICS_KEYS)
    return MetricsSettings() if t is None else MetricsSettings(enabled=t.boolean("enabled", True))
