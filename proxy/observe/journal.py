"""The request journal: one SQLite row per request and one per attempt, written off the request
path.

The event loop hands over the records of a batch (`add_all`, never blocks: a bounded queue and
one wake-up, see `proxy.observe.observer`). One background thread writes each batch in one
transaction, in WAL mode so `llmproxy logs` can read while the daemon writes, and sleeps while
nothing comes. Retention (age, then size) runs at start and every few minutes in the same
thread.

A journal that cannot be written (read-only or full disk, a path that cannot be created, a
database another process holds locked) never fails a request: records are dropped, a warning
says so once, and a line says so again when writing works again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from proxy.frozen import fields, frozen
from proxy.observe.record import OK, RequestRecord, attempts_path
from proxy.observe.settings import JournalSettings
from proxy.types import JSONObject

log = logging.getLogger("llmproxy.journal")

QUEUE_LIMIT = 10_000
"""Records waiting to be written; past this they are dropped (the disk cannot keep up)."""
RETENTION_EVERY = 600.0
LOCK_TIMEOUT = 2.0
CACHE_KIB = 256
"""The connection's page cache."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    client_api TEXT NOT NULL,
    stream INTEGER NOT NULL,
    model TEXT NOT NULL,
    route TEXT NOT NULL,
    reason TEXT NOT NULL,
    provider TEXT,
    served_model TEXT,
    path TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd REAL,
    ttft_ms REAL,
    total_ms REAL NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT NOT NULL,
    attempt_ms REAL
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE TABLE IF NOT EXISTS attempt_rows (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status INTEGER,
    error_class TEXT,
    elapsed_ms REAL NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE VIEW IF NOT EXISTS attempts AS
    SELECT request_id, seq, provider, model, status, error_class, elapsed_ms, detail
    FROM attempt_rows
    UNION ALL
    SELECT id, 0, provider, served_model, status, NULL, attempt_ms, ''
    FROM requests WHERE attempt_ms IS NOT NULL;
"""
"""One row per request; one per attempt as readers see it (`attempts`, a view). A request
served by its one attempt, with the request's status and no detail (most requests), keeps that
attempt in its own row (`attempt_ms`, its time): a second row in a second table with its own
index cost the writer a third of its work. Every other request's attempts are rows of
`attempt_rows`."""
UPGRADE = (
    # A journal written before `attempt_ms`: its attempts table becomes `attempt_rows`, under
    # the view that readers query by the old name. Nothing is copied.
    "ALTER TABLE attempts RENAME TO attempt_rows",
    "ALTER TABLE requests ADD COLUMN attempt_ms REAL",
)


class Journal:
    """Owns the writer thread. `start` and `close` come from the app's lifecycle."""

    def __init__(self, path: Path, settings: JournalSettings) -> None:
        self.path = path
        self.settings = settings
        # A deque's extend is one C call under the GIL: the loop takes no lock for it, and sets
        # `_wake` once a batch.
        self._pending: deque[RequestRecord] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmproxy-journal", daemon=True)
        self._degraded = False
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def add(self, record: RequestRecord) -> None:
        self.add_all([record])

    def add_all(self, records: list[RequestRecord]) -> None:
        """Queue `records` and wake the writer; never blocks, never raises."""
        room = QUEUE_LIMIT - len(self._pending)
        if len(records) > room:
            self.dropped += len(records) - max(room, 0)
            self._problem("the writer cannot keep up; records are being dropped")
            records = records[: max(room, 0)]
        self._pending.extend(records)
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`) and stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def degraded(self) -> bool:
        return self._degraded

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        next_retention = 0.0
        stopping = False
        while not stopping:
            self._wake.wait(max(next_retention - time.monotonic(), 0.0) if db is not None else None)
            self._wake.clear()  # before taking: a batch queued after the take wakes it again
            stopping = self._stopping
            batch = self._take()
            if db is None and batch:
                db = self._open()
            if db is None:
                self.dropped += len(batch)
                continue
            if not batch and time.monotonic() < next_retention:
                continue
            try:
                if batch:
                    _write(db, batch)
                    self.written += len(batch)
                if time.monotonic() >= next_retention:
                    next_retention = time.monotonic() + RETENTION_EVERY
                    apply_retention(db, self.settings)
            except (sqlite3.Error, OSError) as exc:
                self.dropped += len(batch)
                self._problem(str(exc))
                with contextlib.suppress(sqlite3.Error):
                    db.rollback()
                continue
            self._recovered()
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def _take(self) -> list[RequestRecord]:
        batch: list[RequestRecord] = []
        pending = self._pending
        while pending:
            batch.append(pending.popleft())
        return batch

    def _open(self) -> sqlite3.Connection | None:
        try:
            return open_journal(self.path)
        except (sqlite3.Error, OSError) as exc:
            reason, where = str(exc), self.path.parent
            if where.is_dir() and not os.access(where, os.W_OK):
                # SQLite says only "unable to open database file": a WAL journal is read
                # through files beside it, which a read-only directory cannot hold.
                reason += f": {where} is read-only"
            self._problem(f"cannot open {self.path}: {reason}")
            return None

    def _problem(self, what: str) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning("request journal degraded, requests are served but not recorded: %s", what)

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.warning("request journal is being written again (%s)", self.path)


def open_journal(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=LOCK_TIMEOUT, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # SQLite's default page cache, 2 MB, would stay in the daemon's RSS. A daemon appends
        # its rows in id and time order, so the pages it writes next are the ones it wrote last;
        # the operating system caches the file for the rest (README, "Performance").
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        _schema(db)
    except sqlite3.Error:
        db.close()
        raise
    with contextlib.suppress(OSError):
        path.chmod(0o600)  # prompts are never stored, but models, costs and times are private
    return db


def _schema(db: sqlite3.Connection) -> None:
    """Create or upgrade the tables, in one transaction: another worker's writer may open the
    same journal at the same moment. A journal that has them is not written to (it may be on a
    read-only disk: that is found, and said, when its first batch is written)."""
    names = dict(db.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'attempt%'"))
    if names.get("attempts") == "view" and names.get("attempt_rows") == "table":
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        kind = db.execute("SELECT type FROM sqlite_master WHERE name = 'attempts'").fetchone()
        if kind is not None and kind[0] == "table":
            for statement in UPGRADE:
                db.execute(statement)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.commit()
    except sqlite3.Error:
        db.rollback()
        raise


# Rows go in as multi-row `INSERT ... VALUES (...), (...)`, up to CHUNK_ROWS a statement.
# sqlite3 lets go of the GIL around every step of a statement, and `executemany` is a step per
# row: the writer and the event loop would hand the GIL back and forth for each one. One
# statement per chunk keeps that to a few handovers per batch, with no JSON to unpack (SQLite's
# `json_each` over a batch cost twice as much CPU per row). Chunk sizes are powers of two, so
# the sqlite3 module's statement cache holds every statement after the first batches.
# The parameters are built as one flat list per shape (`+=` a tuple is one C call): a tuple per
# row flattened afterwards cost a fifth of the writer's instructions. Every parameter is an
# exact int, float or str: sqlite3 binds anything else (None, a bool) through its adapter
# lookup, about 3,000 instructions a value, more than a row's B-tree inserts. A NULL is sent
# as its column's sentinel (`NO_TEXT`, `NO_NUMBER`) and made NULL again by `NULLIF` in the
# statement.
# Most requests are plain rows (`_PLAIN`): served by their one attempt, kept in their row, and
# ended well. Their statements write what such a row always holds (no error, `ok`, the stream
# flag, a non-stream's NULL time to first token) as constants: three or four parameters fewer
# and one `NULLIF` (the cost) instead of five, a sixth of SQLite's work for the row (binding a
# parameter takes SQLite's mutex and, for text, a copy).
NO_TEXT = ""
NO_NUMBER = -1
_NULLABLE = {
    # provider, served_model, cost, ttft, attempt_ms
    "requests": {7: "''", 8: "''", 14: "-1", 15: "-1", 20: "-1"},
    "attempt_rows": {4: "-1", 5: "''"},  # status, error_class
}
_PLAIN = {
    # stream: (width, row). The parameters of a row: id, ts, client_api, model, route, reason,
    # provider, served_model, path (the provider again), the four token counts, cost, [ttft,]
    # total_ms, status, attempt_ms. Anonymous: SQLite looks each numbered parameter (`?7`
    # twice, for the provider and the path) up in a list while it prepares the statement, so
    # 128 rows of them took 27 million instructions to prepare and run once, against 5.5
    # million with the provider bound twice.
    False: (
        17,
        "(?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, -1), NULL, ?, ?, 'ok', '', ?)",
    ),
    True: (
        18,
        "(?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, -1), ?, ?, ?, 'ok', '', ?)",
    ),
}
CHUNK_ROWS = 256 if sqlite3.sqlite_version_info >= (3, 32, 0) else 32
"""256 rows of 21 columns: 5,376 parameters, under the 32,766 of SQLite since 3.32 (999
before: 32 rows of 21, 672)."""
SHAPE_ROWS: dict[str | bool, int] = {"requests": 32, "attempt_rows": 256, False: 128, True: 128}
"""The most rows a statement of each shape takes. The connection keeps every statement it
prepared, each size of each shape, all the daemon's life: those of plain rows, most rows, at
up to 128 (about 0.8 MB for every size of one), those of the other request rows, a few, at up
to 32 (0.3 MB), so that all of them together keep less than the 256-row statements of one
shape (2.4 MB) did. Two statements of 128 rows cost little more CPU a row than one of 256."""


def _write(db: sqlite3.Connection, batch: list[RequestRecord]) -> None:
    requests: list[object] = []
    attempts: list[object] = []
    plain: list[object] = []
    streamed: list[object] = []
    for r in batch:
        u = r.usage
        served = r.served
        tried = r.attempts
        alone: float = NO_NUMBER  # the time of an attempt kept in the request's row (SCHEMA)
        if len(tried) == 1:
            a = tried[0]
            if (
                a.error_class is None
                and a.status == r.status
                and not a.detail
                and (a.target is served or a.target == served)
            ):
                alone = int(a.elapsed_ms * 10.0 + 0.5) / 10.0  # `_tenth`, without a call
                # `served` is set: the attempt's target is it.
                if r.outcome == OK and not r.error and not a.streaming and served is not None:
                    if not r.stream:
                        plain += (
                            r.id,
                            r.started,
                            r.client_api,
                            r.requested_model,
                            r.route,
                            r.reason,
                            served.provider,
                            served.model,
                            served.provider,  # the path
                            u.input_tokens,
                            u.output_tokens,
                            u.cache_read_input_tokens,
                            u.cache_creation_input_tokens,
                            NO_NUMBER if r.cost is None else r.cost,
                            int(r.total_ms * 10.0 + 0.5) / 10.0,
                            r.status,
                            alone,
                        )
                        continue
                    if r.ttft_ms is not None:
                        # The plain row above and a time to first token: written twice, since
                        # one tuple built in parts cost 560 instructions a record more (2%).
                        streamed += (
                            r.id,
                            r.started,
                            r.client_api,
                            r.requested_model,
                            r.route,
                            r.reason,
                            served.provider,
                            served.model,
                            served.provider,  # the path
                            u.input_tokens,
                            u.output_tokens,
                            u.cache_read_input_tokens,
                            u.cache_creation_input_tokens,
                            NO_NUMBER if r.cost is None else r.cost,
                            r.ttft_ms,
                            int(r.total_ms * 10.0 + 0.5) / 10.0,
                            r.status,
                            alone,
                        )
                        continue
        # Written out, no calls where an expression does: this loop is most of the writer's
        # Python, once per request.
        requests += (
            r.id,
            r.started,
            r.client_api,
            1 if r.stream else 0,
            r.requested_model,
            r.route,
            r.reason,
            served.provider if served else NO_TEXT,
            served.model if served else NO_TEXT,
            served.provider  # `attempts_path` of a lone attempt that answered
            if alone >= 0 and served and not tried[0].streaming
            else attempts_path(tried),
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            NO_NUMBER if r.cost is None else r.cost,
            NO_NUMBER if r.ttft_ms is None else r.ttft_ms,
            int(r.total_ms * 10.0 + 0.5) / 10.0,
            r.status,
            r.outcome,
            r.error,
            alone,
        )
        if alone >= 0:
            continue
        for seq, a in enumerate(tried):
            error = a.error_class
            attempts += (
                r.id,
                seq,
                a.target.provider,
                a.target.model,
                NO_NUMBER if a.status is None else a.status,
                error.value if error else NO_TEXT,
                _tenth(a.elapsed_ms),
                a.detail,
            )
    with db:
        _insert(db, "requests", 21, requests)
        _insert(db, False, _PLAIN[False][0], plain)
        _insert(db, True, _PLAIN[True][0], streamed)
        _insert(db, "attempt_rows", 8, attempts)


def _tenth(ms: float) -> float:
    """`ms` to a tenth, as `round(ms, 1)` for these (non-negative) times, at a fifth of its
    cost: `round` with digits goes through a decimal string and back."""
    return int(ms * 10.0 + 0.5) / 10.0


def _insert(db: sqlite3.Connection, shape: str | bool, width: int, values: list[object]) -> None:
    """`shape`: a table's name (all its columns bound), or a `_PLAIN` request row's stream
    flag."""
    rows, done = len(values) // width, 0
    most = min(CHUNK_ROWS, SHAPE_ROWS[shape])
    while done < rows:
        size = most
        while size > rows - done:
            size //= 2
        db.execute(_insert_statement(shape, size), values[done * width : (done + size) * width])
        done += size


@functools.cache
def _insert_statement(shape: str | bool, rows: int) -> str:
    if isinstance(shape, bool):
        return "INSERT INTO requests VALUES " + ", ".join([_PLAIN[shape][1]] * rows)
    nullable = _NULLABLE[shape]
    width = 21 if shape == "requests" else 8
    row = ", ".join(f"NULLIF(?, {nullable[i]})" if i in nullable else "?" for i in range(width))
    return f"INSERT INTO {shape} VALUES " + ", ".join([f"({row})"] * rows)


def apply_retention(
    db: sqlite3.Connection, settings: JournalSettings, now: float | None = None
) -> None:
    """Delete rows older than `retention_days`, then the oldest tenth while the data is larger
    than `max_mb`."""
    cutoff = (time.time() if now is None else now) - settings.retention_days * 86400
    with db:
        _delete_before(db, cutoff)
    limit = settings.max_mb * 1024 * 1024
    for _ in range(20):
        if _data_bytes(db) <= limit:
            break
        row = db.execute(
            "SELECT ts FROM requests ORDER BY ts LIMIT 1 OFFSET "
            "(SELECT COUNT(*) / 10 FROM requests)"
        ).fetchone()
        if row is None:
            break
        with db:
            _delete_before(db, row[0] + 1e-6)
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _delete_before(db: sqlite3.Connection, cutoff: float) -> None:
    db.execute(
        "DELETE FROM attempt_rows WHERE request_id IN (SELECT id FROM requests WHERE ts < ?)",
        (cutoff,),
    )
    db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,))


def _data_bytes(db: sqlite3.Connection) -> int:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


# --- reading (the CLI) ------------------------------------------------------------------------


@frozen
class Query:
    limit: int = 20
    since: float | None = None
    after_row: int | None = None
    """Only rows written after this one (`logs --follow`): the first `limit` of them, so that
    the next read, after the last row returned, misses none."""
    route: str | None = None
    failed: bool = False
    """Only requests that failed, or needed a fallback on the way."""


@frozen
class JournalEntry:
    """One `requests` row with its `attempts` rows."""

    id: str
    ts: float
    client_api: str
    stream: bool
    model: str
    route: str
    reason: str
    provider: str | None
    served_model: str | None
    path: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    ttft_ms: float | None
    total_ms: float
    status: int
    outcome: str
    error: str
    attempts: tuple[JSONObject, ...] = ()
    row: int = 0
    """SQLite's rowid: the order rows were written in."""

    @property
    def served(self) -> str | None:
        return f"{self.provider},{self.served_model}" if self.provider else None

    def to_json(self) -> JSONObject:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "row"}
        out["attempts"] = list(self.attempts)
        out["served"] = self.served
        return out


def read_requests(path: Path, query: Query) -> list[JournalEntry]:
    """The newest `query.limit` matching requests, or with `after_row` the first written after
    it; oldest first."""
    where: list[str] = ["1=1"]
    args: list[object] = []
    if query.since is not None:
        where.append("ts >= ?")
        args.append(query.since)
    if query.after_row is not None:
        where.append("rowid > ?")
        args.append(query.after_row)
    if query.route:
        where.append("route = ?")
        args.append(query.route)
    if query.failed:
        where.append(
            "(outcome != 'ok' OR EXISTS (SELECT 1 FROM attempts a "
            "WHERE a.request_id = requests.id AND a.error_class IS NOT NULL))"
        )
    with _reader(path) as db:
        rows = db.execute(
            f"SELECT rowid AS row, * FROM requests WHERE {' AND '.join(where)} "
            f"ORDER BY {'rowid ASC' if query.after_row is not None else 'ts DESC, rowid DESC'} "
            "LIMIT ?",
            (*args, query.limit),
        ).fetchall()
        # Rows are written a batch at a time, in the order of their kinds (see `_write`), not
        # each one as its request ended: shown in the order they began.
        rows.sort(key=lambda row: (row["ts"], row["row"]))
        out = []
        for row in rows:
            attempts = tuple(
                dict(a)
                for a in db.execute(
                    "SELECT provider, model, status, error_class, elapsed_ms, detail "
                    "FROM attempts WHERE request_id = ? ORDER BY seq",
                    (row["id"],),
                )
            )
            values = dict(row)
            values.pop("attempt_ms", None)  # in `attempts`
            values["stream"] = bool(values["stream"])
            out.append(JournalEntry(**values, attempts=attempts))
        return out


USAGE_GROUPS = {
    "provider": "COALESCE(provider, '-')",
    "model": "COALESCE(provider || ',' || served_model, '-')",
    "route": "CASE route WHEN '' THEN '-' ELSE route END",
    "day": "date(ts, 'unixepoch', 'localtime')",
}


@frozen
class UsageRow:
    name: str
    requests: int
    failed: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    unpriced: int
    """Served requests whose model has no known price (not in `cost_usd`)."""

    def to_json(self) -> JSONObject:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def usage_summary(path: Path, by: str, since: float | None) -> list[UsageRow]:
    """Requests, tokens and cost per `provider`, `model`, `route` or `day`."""
    key = USAGE_GROUPS[by]
    with _reader(path) as db:
        rows = db.execute(
            f"SELECT {key} AS name, COUNT(*), SUM(outcome != 'ok'), SUM(input_tokens), "
            "SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
            "ROUND(COALESCE(SUM(cost_usd), 0), 10), "
            "SUM(cost_usd IS NULL AND provider IS NOT NULL) "
            "FROM requests WHERE ts >= ? GROUP BY name ORDER BY name",
            (since or 0.0,),
        ).fetchall()
        return [
            UsageRow(
                str(r[0]),
                int(r[1]),
                int(r[2] or 0),
                int(r[3] or 0),
                int(r[4] or 0),
                int(r[5] or 0),
                int(r[6] or 0),
                float(r[7] or 0.0),
                int(r[8] or 0),
            )
            for r in rows
        ]


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=LOCK_TIMEOUT)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()
