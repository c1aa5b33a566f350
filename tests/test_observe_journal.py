"""The journal never fails a request: a path it cannot create and a database another process
holds locked degrade it (said once), and it recovers; retention by age and by size."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support import CLIENT_KEY, config_text

from proxy.appkeys import OBSERVER
from proxy.config import parse_config
from proxy.errors import ConfigError
from proxy.frozen import replace
from proxy.observe.journal import (
    Journal,
    Query,
    _data_bytes,
    _insert_statement,
    _write,
    apply_retention,
    open_journal,
    read_requests,
)
from proxy.observe.record import RequestRecord, attempts_path
from proxy.observe.settings import JournalSettings
from proxy.server import build_app
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import Attempt, ErrorClass, Target, Usage

DEGRADED = "request journal degraded"


@pytest.fixture
async def proxy_with_journal(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str, Path]]:
    """A daemon whose `[journal] path` the test chooses by creating (or blocking) it first."""
    journal = tmp_path / "journal" / "requests.db"
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        text = config_text(sims, {"default": "zai,glm-5"}) + f'[journal]\npath = "{journal}"\n'
        app = build_app(parse_config(text, env={}), env={})
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield app, str(server.make_url("/v1")), journal
        finally:
            await server.close()


async def _ask(base: str, n: int) -> float:
    """Seconds the slowest of `n` requests took."""
    slowest = 0.0
    async with openai.AsyncOpenAI(base_url=base, api_key=CLIENT_KEY, max_retries=0) as client:
        for _ in range(n):
            started = time.monotonic()
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
            slowest = max(slowest, time.monotonic() - started)
    return slowest


async def _until(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_a_journal_that_cannot_be_created_degrades_once(
    proxy_with_journal: tuple[web.Application, str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    app, base, journal = proxy_with_journal
    journal.parent.parent.mkdir(parents=True, exist_ok=True)
    journal.parent.write_text("a file where the journal's directory should be")
    await _ask(base, 3)
    observer_journal = app[OBSERVER].journal
    assert observer_journal is not None
    await _until(lambda: observer_journal.dropped == 3)
    warnings = [r for r in caplog.records if DEGRADED in r.getMessage()]
    assert len(warnings) == 1 and str(journal) in warnings[0].getMessage()


async def test_a_locked_journal_never_slows_a_request_and_recovers(
    proxy_with_journal: tuple[web.Application, str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    app, base, journal = proxy_with_journal
    writer = app[OBSERVER].journal
    assert writer is not None
    await _ask(base, 1)
    await _until(lambda: writer.written == 1)
    holder = sqlite3.connect(journal, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        slowest = await _ask(base, 3)
        await _until(lambda: writer.dropped >= 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert slowest < 1.0  # the writer waits for the lock (2 s), requests never do
    await _ask(base, 1)
    await _until(lambda: not writer.degraded and writer.written >= 2)
    messages = [r.getMessage() for r in caplog.records if r.name == "llmproxy.journal"]
    assert len([m for m in messages if DEGRADED in m and "locked" in m]) == 1
    assert any("written again" in m for m in messages)
    assert len(read_requests(journal, Query(limit=100))) == writer.written


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny filesystem (tmpfs, 96 KiB) to fill up or make read-only. Mounting needs
    root, which CI and the development machines have: only a user without it skips these
    tests; as root, a mount that fails is a failure, never a silent skip."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a small tmpfs: {done.stderr.decode().strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def _serve_with_journal(path: Path) -> tuple[web.Application, TestServer, SimulatedProvider]:
    sim = SimulatedProvider("zai", "openai", ["glm-5"])
    await sim.start()
    text = config_text({"zai": sim}, {"default": "zai,glm-5"}) + f'[journal]\npath = "{path}"\n'
    app = build_app(parse_config(text, env={}), env={})
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return app, server, sim


async def test_a_full_disk_never_fails_a_request(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, server, sim = await _serve_with_journal(small_disk / "requests.db")
    writer = app[OBSERVER].journal
    assert writer is not None
    try:
        base = str(server.make_url("/v1"))
        for _ in range(40):  # until the 96 KiB are full
            await _ask(base, 20)
            await asyncio.sleep(0.3)
            if writer.dropped:
                break
        slowest = await _ask(base, 5)
    finally:
        await server.close()
        await sim.stop()
    assert writer.dropped > 0 and writer.written > 0
    assert slowest < 1.0
    messages = [r.getMessage() for r in caplog.records if DEGRADED in r.getMessage()]
    assert len(messages) == 1 and "full" in messages[0]


async def test_a_read_only_disk_never_fails_a_request(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = small_disk / "requests.db"
    app, server, sim = await _serve_with_journal(journal)  # a first daemon makes the journal
    try:
        await _ask(str(server.make_url("/v1")), 1)
    finally:
        await server.close()
        await sim.stop()
    assert app[OBSERVER].journal.written == 1  # type: ignore[union-attr]
    remount = await asyncio.create_subprocess_exec("mount", "-o", "remount,ro", str(small_disk))
    assert await remount.wait() == 0
    caplog.clear()
    app, server, sim = await _serve_with_journal(journal)  # the next finds the disk read-only
    writer = app[OBSERVER].journal
    assert writer is not None
    try:
        slowest = await _ask(str(server.make_url("/v1")), 3)
        await _until(lambda: writer.dropped == 3)
    finally:
        await server.close()
        await sim.stop()
    assert slowest < 1.0
    messages = [r.getMessage() for r in caplog.records if DEGRADED in r.getMessage()]
    assert len(messages) == 1 and "readonly" in messages[0].replace("read-only", "readonly")


def _record(started: float, n: int) -> RequestRecord:
    target = Target("zai", "glm-5")
    return RequestRecord(
        id=f"req_{n:08d}",
        started=started,
        client_api="openai",
        stream=False,
        requested_model="auto",
        route="default",
        reason="default route " + "x" * 200,
        served=target,
        attempts=(Attempt(target, 200, None, 12.0),),
        usage=Usage(10, 5),
        cost=0.001,
        ttft_ms=None,
        total_ms=20.0,
        status=200,
        outcome="ok",
    )


def test_retention_by_age_then_by_size(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    settings = JournalSettings(retention_days=30, max_mb=1)
    journal = Journal(path, settings)
    journal.start()
    now = time.time()
    for n in range(10):
        journal.add(_record(now - 40 * 86400 + n, n))  # older than 30 days
    for n in range(10, 6010):
        journal.add(_record(now - 6010 + n, n))
    journal.close()
    with sqlite3.connect(path) as db:
        # retention ran at start, before these rows came: apply it as the next pass would
        apply_retention(db, settings, now)
        ids = [row[0] for row in db.execute("SELECT id FROM requests ORDER BY ts")]
        assert ids and all(int(i[4:]) >= 10 for i in ids)  # the old ones are gone
        assert len(ids) < 6000 and ids[-1] == "req_00006009"  # the oldest went first
        assert _data_bytes(db) <= 1024 * 1024
        orphans = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE request_id NOT IN (SELECT id FROM requests)"
        ).fetchone()[0]
        assert orphans == 0


def test_missing_values_are_stored_as_null_and_values_as_written(tmp_path: Path) -> None:
    """The writer sends a NULL as a sentinel that its statement turns back into NULL
    (`NULLIF`): what is read is what the record held, None included."""
    target = Target("zai", "glm-5")
    failed = RequestRecord(
        id="req_failed",
        started=time.time(),
        client_api="anthropic",
        stream=True,
        requested_model="auto",
        route="default",
        reason="",
        served=None,
        attempts=(Attempt(target, None, ErrorClass.TIMEOUT, 1234.56, detail="no answer"),),
        usage=Usage(0, 0),
        cost=None,
        ttft_ms=None,
        total_ms=1300.04,
        status=504,
        outcome="error",
        error="timeout",
    )
    served = replace(_record(time.time(), 1), stream=True, ttft_ms=0.0, cost=0.0)
    journal = Journal(tmp_path / "requests.db", JournalSettings())
    journal.start()
    journal.add_all([failed, served])
    journal.close()
    first, second = read_requests(tmp_path / "requests.db", Query())
    assert (first.provider, first.served_model, first.cost_usd, first.ttft_ms) == (None,) * 4
    assert first.stream is True and first.total_ms == 1300.0 and first.error == "timeout"
    assert first.attempts == (
        {
            "provider": "zai",
            "model": "glm-5",
            "status": None,
            "error_class": "timeout",
            "elapsed_ms": 1234.6,
            "detail": "no answer",
        },
    )
    assert (second.provider, second.served_model) == ("zai", "glm-5")
    assert (second.cost_usd, second.ttft_ms) == (0.0, 0.0)  # zero is a value, not a NULL
    assert second.attempts[0]["status"] == 200 and second.attempts[0]["error_class"] is None


def test_flush_ms_is_how_often_records_are_handed_over() -> None:
    text = (
        '[router]\ndefault = "zai,glm-5"\n[[providers]]\nname = "zai"\n'
        'api_base_url = "https://api.z.ai/v1"\nmodels = ["glm-5"]\n'
    )
    assert parse_config(text, env={}).journal.flush_seconds == 0.2
    assert parse_config(text + "\n[journal]\nflush_ms = 50", env={}).journal.flush_seconds == 0.05
    with pytest.raises(ConfigError) as error:
        parse_config(text + "\n[journal]\nflush_ms = 5", env={})
    assert error.value.key == "journal.flush_ms"


SCHEMA_BEFORE_ATTEMPT_MS = """
CREATE TABLE requests (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, client_api TEXT NOT NULL, stream INTEGER NOT NULL,
    model TEXT NOT NULL, route TEXT NOT NULL, reason TEXT NOT NULL, provider TEXT,
    served_model TEXT, path TEXT NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL, cost_usd REAL, ttft_ms REAL, total_ms REAL NOT NULL,
    status INTEGER NOT NULL, outcome TEXT NOT NULL, error TEXT NOT NULL
);
CREATE INDEX requests_ts ON requests (ts);
CREATE TABLE attempts (
    request_id TEXT NOT NULL, seq INTEGER NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    status INTEGER, error_class TEXT, elapsed_ms REAL NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
"""


def _fallback_record(started: float, n: int) -> RequestRecord:
    zai, cerebras = Target("zai", "glm-5"), Target("cerebras", "llama-3.3-70b")
    return replace(
        _record(started, n),
        served=cerebras,
        attempts=(
            Attempt(zai, 500, ErrorClass.SERVER_ERROR, 30.04, detail="upstream said 500"),
            Attempt(cerebras, 200, None, 12.0),
        ),
    )


def _entries(path: Path) -> list[dict[str, object]]:
    out = []
    for entry in read_requests(path, Query(limit=100)):
        values = entry.to_json()
        values["row"] = entry.row
        out.append(values)
    return out


def test_a_journal_written_before_attempt_ms_is_read_and_appended_to(tmp_path: Path) -> None:
    """A journal of the schema before requests kept their one attempt in their own row: the
    writer turns its `attempts` table into `attempt_rows` under the `attempts` view, and what
    was in it reads as before, beside the new rows."""
    path = tmp_path / "requests.db"
    now = time.time()
    old_rows = [_record(now - 3, 1), _fallback_record(now - 2, 2)]
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_BEFORE_ATTEMPT_MS)
        for r in old_rows:  # as the writer before the change wrote them
            served = r.served
            assert served is not None
            db.execute(
                "INSERT INTO requests VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    r.id,
                    r.started,
                    r.client_api,
                    0,
                    r.requested_model,
                    r.route,
                    r.reason,
                    served.provider,
                    served.model,
                    attempts_path(r.attempts),
                    10,
                    5,
                    0,
                    0,
                    r.cost,
                    None,
                    r.total_ms,
                    r.status,
                    r.outcome,
                    r.error,
                ],
            )
            for seq, a in enumerate(r.attempts):
                error = a.error_class.value if a.error_class else None
                db.execute(
                    "INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?)",
                    [
                        r.id,
                        seq,
                        a.target.provider,
                        a.target.model,
                        a.status,
                        error,
                        round(a.elapsed_ms, 1),
                        a.detail,
                    ],
                )
    db.close()
    before = _entries(path)
    assert [len(e["attempts"]) for e in before] == [1, 2]  # type: ignore[arg-type]
    journal = Journal(path, JournalSettings())
    journal.start()
    journal.add_all([_record(now - 1, 3), _fallback_record(now, 4)])
    journal.close()
    assert journal.written == 2 and not journal.degraded
    after = _entries(path)
    assert after[:2] == before
    # The same request written before and after the change reads the same.
    unnamed = {"id": "", "ts": 0, "row": 0}
    assert {**after[2], **unnamed} == {**before[0], **unnamed}
    assert {**after[3], **unnamed} == {**before[1], **unnamed}
    with sqlite3.connect(path) as db:
        # Request 3's one attempt is in its request's row; request 4's two have rows of their own.
        assert db.execute("SELECT COUNT(*) FROM attempt_rows").fetchone()[0] == 3 + 2
        assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 3 + 3
    db.close()
    assert read_requests(path, Query(failed=True))[-1].id == "req_00000004"


def test_an_attempt_is_kept_in_its_request_row_only_when_it_reads_the_same() -> None:
    """One attempt that answered with the request's status and no detail lives in the
    request's row; any other (a detail, another status, another target) gets a row of its own,
    and each reads back as it was."""
    zai, cerebras = Target("zai", "glm-5"), Target("cerebras", "llama-3.3-70b")
    base = _record(time.time(), 1)
    variants = [
        base,
        replace(base, id="req_detail", attempts=(Attempt(zai, 200, None, 12.0, detail="x"),)),
        replace(base, id="req_status", attempts=(Attempt(zai, 201, None, 12.0),)),
        replace(base, id="req_target", attempts=(Attempt(cerebras, 200, None, 12.0),)),
        replace(base, id="req_none", attempts=()),
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "requests.db"
        journal = Journal(path, JournalSettings())
        journal.start()
        journal.add_all(variants)
        journal.close()
        entries = read_requests(path, Query())
        with sqlite3.connect(path) as db:
            kept = db.execute("SELECT COUNT(*) FROM attempt_rows").fetchone()[0]
        db.close()
    assert kept == 3
    by_id = {entry.id: entry for entry in entries}
    assert len(by_id) == len(variants)
    for record in variants:
        entry = by_id[record.id]
        assert entry.attempts == tuple(
            {
                "provider": a.target.provider,
                "model": a.target.model,
                "status": a.status,
                "error_class": None,
                "elapsed_ms": a.elapsed_ms,
                "detail": a.detail,
            }
            for a in record.attempts
        )


def test_following_reads_every_row_once_however_many_came_between_two_polls(
    tmp_path: Path,
) -> None:
    """`logs --follow` reads on from the last row it showed, at most 1000 rows a poll. A batch
    is written grouped by kind (fallbacks apart from plain rows), so a poll that kept the
    newest rows instead of the first ones lost a kind whole (review finding)."""
    zai, cerebras = Target("zai", "glm-5"), Target("cerebras", "llama")
    now = time.time()
    batch = [_record(now + n / 1000, n) for n in range(1, 1201)]
    for n in range(0, 1200, 10):  # every tenth needed a fallback
        batch[n] = replace(
            batch[n],
            served=cerebras,
            attempts=(
                Attempt(zai, 500, ErrorClass.SERVER_ERROR, 9.0),
                Attempt(cerebras, 200, None, 12.0),
            ),
            fallbacks=1,
        )
    path = tmp_path / "requests.db"
    journal = Journal(path, JournalSettings())
    journal.start()
    journal.add_all([_record(now - 1, 0)])
    journal.close()
    last = read_requests(path, Query())[-1].row
    journal = Journal(path, JournalSettings())
    journal.start()
    journal.add_all(batch)
    journal.close()
    seen: list[str] = []
    while polled := read_requests(path, Query(limit=1000, after_row=last)):
        seen += [e.id for e in polled]
        assert [e.ts for e in polled] == sorted(e.ts for e in polled)
        last = max(e.row for e in polled)
    assert sorted(seen) == [r.id for r in batch]
    assert len(seen) == len(set(seen))


def test_every_kind_of_row_reads_back_as_its_record(tmp_path: Path) -> None:
    """Plain rows (served by their one attempt, ended well: most requests),
    streamed or not, go in by statements that write their constant columns as constants; the
    rows one difference away from plain go in by the general ones. Each reads back as its
    record, in the order the requests began."""
    zai = Target("zai", "glm-5")
    now = time.time()
    plain = replace(_record(now, 1), usage=Usage(10, 5, 3, 2))
    variants = [
        plain,
        replace(plain, id="req_stream", started=now + 1, stream=True, ttft_ms=41.25),
        replace(plain, id="req_no_ttft", started=now + 2, stream=True, ttft_ms=None),
        replace(plain, id="req_unpriced", started=now + 3, cost=None),
        replace(plain, id="req_cut", started=now + 4, outcome="client_disconnected", status=200),
        replace(plain, id="req_error", started=now + 5, error="stream_cut", outcome="error"),
        replace(
            plain,
            id="req_streaming",
            started=now + 6,
            attempts=(Attempt(zai, 200, None, 12.0, streaming=True),),
        ),
        replace(plain, id="req_free", started=now + 7, cost=0.0, stream=True, ttft_ms=0.0),
    ]
    path = tmp_path / "requests.db"
    journal = Journal(path, JournalSettings())
    journal.start()
    journal.add_all(list(reversed(variants)))  # written in another order than they began
    journal.close()
    entries = read_requests(path, Query())
    assert [e.id for e in entries] == [r.id for r in variants]
    followed = read_requests(path, Query(after_row=0))
    assert [e.id for e in followed] == [r.id for r in variants]
    for record, entry in zip(variants, entries, strict=True):
        assert (entry.ts, entry.client_api, entry.stream, entry.model) == (
            record.started,
            record.client_api,
            record.stream,
            record.requested_model,
        )
        assert (entry.route, entry.reason, entry.provider, entry.served_model) == (
            record.route,
            record.reason,
            "zai",
            "glm-5",
        )
        assert entry.path == attempts_path(record.attempts)
        assert (entry.input_tokens, entry.output_tokens) == (10, 5)
        assert (entry.cache_read_tokens, entry.cache_write_tokens) == (3, 2)
        assert (entry.cost_usd, entry.ttft_ms, entry.total_ms) == (
            record.cost,
            record.ttft_ms,
            record.total_ms,
        )
        assert (entry.status, entry.outcome, entry.error) == (
            record.status,
            record.outcome,
            record.error,
        )
        assert [(a["provider"], a["status"], a["elapsed_ms"]) for a in entry.attempts] == [
            ("zai", 200, 12.0)
        ]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM attempt_rows").fetchone()[0] == 0
        nulls = db.execute(
            "SELECT id FROM requests WHERE ttft_ms IS NULL OR cost_usd IS NULL ORDER BY ts"
        ).fetchall()
    db.close()
    assert [n[0] for n in nulls] == [
        "req_00000001",
        "req_no_ttft",
        "req_unpriced",
        "req_cut",
        "req_error",
        "req_streaming",
    ]


def test_no_statement_takes_more_rows_than_its_shape_allows(tmp_path: Path) -> None:
    """The connection keeps each statement it prepared: plain rows go in by statements of at
    most 128 rows, the other request rows by statements of at most 32 (`SHAPE_ROWS`), and
    every row still goes in."""
    now = time.time()
    plain = [replace(_record(now, n), id=f"req_p{n}") for n in range(300)]
    other = [replace(r, id=f"req_o{n}", outcome="error", error="x") for n, r in enumerate(plain)]
    db = open_journal(tmp_path / "requests.db")
    executed: list[str] = []
    db.set_trace_callback(executed.append)
    _write(db, plain[:100] + other[:40] + plain[100:] + other[40:45])
    db.set_trace_callback(None)
    inserts = [sql for sql in executed if sql.startswith("INSERT INTO requests")]
    plain_rows = [sql.count("'ok', ''") for sql in inserts if "'ok', ''" in sql]
    other_rows = [sql.count("), (") + 1 for sql in inserts if "'ok', ''" not in sql]
    assert max(plain_rows) == 128 and sum(plain_rows) == 300
    assert max(other_rows) == 32 and sum(other_rows) == 45
    assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 345
    db.close()


def test_every_statement_kept_holds_less_than_one_kind_of_256_rows_did(tmp_path: Path) -> None:
    """The connection keeps each statement it prepared. Every size of the three kinds of
    request rows (plain, plain streamed, the others) at their `SHAPE_ROWS` together hold less
    of the heap than every size of one kind at 256 rows did (glibc's `mallinfo2`)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo

    def heap() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    now = time.time()
    plain = [replace(_record(now, n), id=f"req_p{n}") for n in range(255)]
    kinds = [
        plain,
        [replace(r, id=r.id + "s", stream=True, ttft_ms=1.0) for r in plain],
        [replace(r, id=r.id + "e", outcome="error", error="x") for r in plain],
    ]
    db = open_journal(tmp_path / "now.db")
    before = heap()
    for kind in kinds:
        _write(db, kind)  # 255 rows: a statement of every size
    kept_now = heap() - before
    db.close()
    old = open_journal(tmp_path / "before.db")
    before = heap()
    for size in (256, 128, 64, 32, 16, 8, 4, 2, 1):
        # The statement every request row went in by before (it still takes the others).
        statement = _insert_statement("requests", size)
        old.execute(statement, [value for i in range(size) for value in _row(i)])
    kept_before = heap() - before
    old.close()
    assert 0 < kept_now < kept_before


class _MallInfo(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _row(n: int) -> list[object]:
    """A row of the 21 columns, every parameter bound (as the general statement binds them)."""
    row: list[object] = [f"old{n}-{time.monotonic_ns()}", 1.0, "openai", 0, "m", "r", "x"]
    row += ["p", "m", "p", 1, 2, 3, 4, 0.5, 1.5, 2.5, 200, "ok", "", 1.0]
    return row
