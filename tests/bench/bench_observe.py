"""Benchmark: the CPU each request's record costs its sinks, in one process, off and on.

Not a test. Run:

    .venv/bin/python tests/bench/bench_observe.py [--records 40000] [--batch 16]

`bench_proxy.py --against .` compares a daemon with observability off and one with it on, which
on a shared machine moves by more than the few percent it measures. This script measures the
observer alone: the records of a realistic request (one attempt, usage, cost) go through
`Observer.finish` as the daemon's loop sends them, `--batch` a turn (the observer hands them
to its sinks 256 at a time, as a busy daemon's would), and the process's CPU
(every thread: the journal's writer too) is divided by the records. Off: log level warning, no
journal, no metrics (the record still reaches the status page's list). On: the request line at
info to /dev/null through the daemon's own handler, metrics, and the journal in a temporary
directory, written before the clock stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from proxy.logging_setup import (  # noqa: E402
    RedactingFilter,
    Redactor,
    attach_redaction,
    configure_logging,
)
from proxy.observe.journal import Journal  # noqa: E402
from proxy.observe.metrics import Metrics  # noqa: E402
from proxy.observe.observer import Observer  # noqa: E402
from proxy.observe.record import RequestRecord  # noqa: E402
from proxy.observe.settings import JournalSettings  # noqa: E402
from proxy.types import Attempt, Target, Usage  # noqa: E402


def _records(n: int) -> list[RequestRecord]:
    served = Target("zai", "glm-5")
    return [
        RequestRecord(
            id=f"req_0123456789ab{i:012x}",
            started=time.time(),
            client_api="anthropic",
            stream=False,
            requested_model="claude-sonnet-4-5",
            route="default",
            reason="no target, mapping or scenario -> default chain",
            served=served,
            attempts=(Attempt(served, 200, None, 812.4),),
            usage=Usage(812, 96, 4096, 0),
            cost=0.00123,
            ttft_ms=None,
            total_ms=830.2,
            status=200,
            outcome="ok",
        )
        for i in range(n)
    ]


async def _run(observer: Observer, records: list[RequestRecord], batch: int) -> None:
    for start in range(0, len(records), batch):
        for record in records[start : start + batch]:
            observer.finish(record)
        await asyncio.sleep(0)  # a turn of the loop (the observer's batch goes out at 256)
    observer.flush()  # the last records, without waiting for the timer


def _measure(label: str, make: object, records: list[RequestRecord], batch: int) -> float:
    started = time.process_time()
    asyncio.run(make(records, batch))  # type: ignore[operator]
    per_record = (time.process_time() - started) / len(records) * 1e6
    print(f"{label:48} {per_record:6.2f} us a request", flush=True)
    return per_record


async def _off(records: list[RequestRecord], batch: int) -> None:
    logging.getLogger("llmproxy").setLevel(logging.WARNING)
    await _run(Observer(None), records, batch)


async def _on(records: list[RequestRecord], batch: int) -> None:
    logging.getLogger("llmproxy").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as directory:
        journal = Journal(Path(directory) / "requests.db", JournalSettings())
        journal.start()
        await _run(Observer(Metrics(list), journal), records, batch)
        journal.close()  # what is queued is written, inside the measurement
        if journal.dropped:  # past QUEUE_LIMIT waiting: far beyond a daemon's request rate
            print(f"  the journal dropped {journal.dropped} records", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=40000)
    parser.add_argument("--batch", type=int, default=16, help="records a turn of the loop")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed")
    args = parser.parse_args()
    redactor = Redactor(["a-configured-provider-key"])
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
    configure_logging("info", redactor)  # its handler writes where bench_proxy's daemons do
    sys.stderr = stderr
    attach_redaction(RedactingFilter(redactor))
    records = _records(args.records)
    off, on = [], []
    for _ in range(args.repeat):
        off.append(_measure("off (warning, no journal, no metrics)", _off, records, args.batch))
        on.append(_measure("on (info line, journal, metrics)", _on, records, args.batch))
    off.sort()
    on.sort()
    middle = args.repeat // 2
    print(
        f"median: off {off[middle]:.2f} us, on {on[middle]:.2f} us a request, "
        f"observability adds {on[middle] - off[middle]:.2f} us"
    )


if __name__ == "__main__":
    main()
