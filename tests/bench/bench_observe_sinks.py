"""Benchmark: the instructions each sink spends on one request's record, in one process.

Not a test. Run:

    .venv/bin/python tests/bench/bench_observe_sinks.py [--records 2560] [--sink log ...]

Each sink (`log`: the request line to /dev/null through the daemon's own handler and
redaction filters, text format; `log-json`: the same with `--log-format json`; `journal`:
`proxy.observe.journal`'s writer, in this thread, into a temporary file; `metrics`) gets the
records of a realistic small request (one attempt that answered, usage, cost), 256 a batch as
a busy daemon hands them over, after two batches of warm-up. The script runs itself under
`valgrind --tool=callgrind` twice per sink, sending `--records` records and sending none, and prints
the difference divided by the records: instructions per record, which the machine's load does
not move. Both runs make the records; only one sends them, so making them is not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
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
from proxy.observe.journal import _write, open_journal  # noqa: E402
from proxy.observe.logline import RequestLog  # noqa: E402
from proxy.observe.metrics import Metrics  # noqa: E402
from proxy.observe.record import RequestIds, RequestRecord  # noqa: E402
from proxy.types import Attempt, Target, Usage  # noqa: E402

SINKS = ("log", "log-json", "journal", "metrics")
BATCH = 256


def _records(ids: RequestIds, n: int) -> list[RequestRecord]:
    served = Target("sim", "gpt-4o-mini")
    return [
        RequestRecord(
            id=ids.next(),
            started=time.time(),
            client_api="openai",
            stream=False,
            requested_model="gpt-4o-mini",
            route="default",
            reason="no target, mapping or scenario -> default chain",
            served=served,
            attempts=(Attempt(served, 200, None, 2.4),),
            usage=Usage(12, 9, 0, 0),
            cost=0.0000123,
            ttft_ms=None,
            total_ms=3.2,
            status=200,
            outcome="ok",
        )
        for _ in range(n)
    ]


def _run_sink(sink: str, n: int, feed: bool) -> None:
    """Inside valgrind: `n` records made, and (with `feed`) sent through `sink` after the
    warm-up."""
    redactor = Redactor(["a-configured-provider-key", "sk-test-upstream-key-123"])
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
    configure_logging("info", redactor, "json" if sink == "log-json" else "text")
    sys.stderr = stderr
    attach_redaction(RedactingFilter(redactor))
    ids = RequestIds()
    warm = [_records(ids, BATCH) for _ in range(2)]
    batches = [_records(ids, BATCH) for _ in range(n // BATCH)]
    if not feed:
        batches = []
    if sink.startswith("log"):
        log = RequestLog()
        for batch in [*warm, *batches]:
            log.write(batch)
    elif sink == "journal":
        with tempfile.TemporaryDirectory() as directory:
            db = open_journal(Path(directory) / "requests.db")
            for batch in [*warm, *batches]:
                _write(db, batch)
            db.close()
    else:
        metrics = Metrics(list)
        for batch in [*warm, *batches]:
            metrics.observe_all(batch)


def _instructions(sink: str, n: int, feed: bool, tmp: Path) -> int:
    out = tmp / f"callgrind.{sink}.{feed}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--inside",
            sink,
            "--records",
            str(n),
            *(["--feed"] if feed else []),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"callgrind wrote no total for {sink}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10 * BATCH)
    parser.add_argument("--sink", action="append", choices=SINKS, default=[])
    parser.add_argument("--inside", choices=SINKS, help=argparse.SUPPRESS)
    parser.add_argument("--feed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        _run_sink(args.inside, args.records, args.feed)
        return
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (Debian: apt-get install valgrind)")
    n = args.records // BATCH * BATCH
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        for sink in args.sink or SINKS:
            fed, made = _instructions(sink, n, True, tmp), _instructions(sink, n, False, tmp)
            print(f"{sink:10} {(fed - made) / n:9,.0f} instructions a record", flush=True)


if __name__ == "__main__":
    main()
