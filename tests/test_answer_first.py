"""Issue 16: a non-streaming answer leaves before the request's bookkeeping (its record, log
line, journal entry and metrics), which then no longer adds to the client's latency.

The daemon runs on its own thread (`DaemonThread`), the client here, so a slow step on the
daemon's loop shows in the client's timing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from security_support import DaemonThread
from support import config_text

from proxy.observe.observer import Observer
from proxy.observe.record import RequestRecord
from proxy.simulate import SimulatedProvider
from proxy.simulate.faults import FaultPlan, Status

BOOKKEEPING = 0.5
"""Seconds each request's bookkeeping is made to take here."""


@pytest.fixture
def slow_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RequestRecord]]:
    """Every request's record is delayed, blocking the daemon's loop (wrapped, not replaced)."""
    finished: list[RequestRecord] = []
    finish = Observer.finish

    def slow(self: Observer, record: RequestRecord) -> None:
        time.sleep(BOOKKEEPING)
        finished.append(record)
        finish(self, record)

    monkeypatch.setattr(Observer, "finish", slow)
    yield finished


CHAT = {"model": "zai,glm-5", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {**CHAT, "max_tokens": 16}


@pytest.mark.parametrize(
    ("path", "body", "fault", "status"),
    [
        ("/v1/chat/completions", CHAT, None, 200),
        ("/v1/messages", MESSAGES, None, 200),
        ("/v1/chat/completions", CHAT, Status(500), 502),  # every try failed
    ],
)
def test_the_answer_leaves_before_the_request_is_recorded(
    slow_bookkeeping: list[RequestRecord],
    path: str,
    body: dict[str, object],
    fault: Status | None,
    status: int,
) -> None:
    plan = FaultPlan.always(fault) if fault else None
    sims = [SimulatedProvider("zai", "openai", ["glm-5"], plan=plan)]
    with DaemonThread(
        sims, lambda running: config_text(running, {"default": "zai,glm-5"})
    ) as daemon:
        started = time.monotonic()
        answer = daemon.send(path, orjson.dumps(body))
        elapsed = time.monotonic() - started
        assert answer[0] == status, answer
        assert elapsed < BOOKKEEPING, elapsed
        deadline = time.monotonic() + 5
        while not slow_bookkeeping and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.status for r in slow_bookkeeping] == [status]  # recorded, afterwards
