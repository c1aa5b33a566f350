"""The README's figures for what observability costs come from two scripts, run as it shows
them: they must keep working. Tiny runs: no timing is judged here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OFF = "[journal]\nenabled = false\n[metrics]\nenabled = false"


@pytest.mark.slow
def test_the_observer_benchmark_prints_off_and_on() -> None:
    done = subprocess.run(
        [sys.executable, "tests/bench/bench_observe.py", "--records", "300", "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"median: off [0-9.]+ us, on [0-9.]+ us a request", done.stdout), done.stdout


@pytest.mark.slow
def test_the_daemon_benchmark_compares_observability_off_and_on_in_one_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "tests/bench/bench_proxy.py",
            "--pin",
            "--against",
            ".",
            "--repeat",
            "2",
            "--requests",
            "5",
            "--seconds",
            "0.3",
            "--concurrency",
            "2",
            "--no-rss",
            "--case",
            "openai>openai non",
            "--baseline-log-level",
            "warning",
            "--baseline-observe",
            OFF,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("openai>openai non-stream")]
    assert re.search(r"c32 [0-9.]+ -> [0-9.]+ ms .* floor ratio", line), line
    assert re.search(r"upstream wake-ups [0-9.]+ -> [0-9.]+$", line), line  # the floor's mover


@pytest.mark.slow
def test_the_sinks_benchmark_drives_every_sink() -> None:
    """What `bench_observe_sinks.py` runs under valgrind (CI has no valgrind): each sink fed."""
    for sink in ("log", "log-json", "journal", "metrics"):
        done = subprocess.run(
            [
                sys.executable,
                "tests/bench/bench_observe_sinks.py",
                "--inside",
                sink,
                "--records",
                "256",
                "--feed",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (sink, done.stderr)


def test_the_instruction_benchmark_runs_the_baseline_from_another_checkout() -> None:
    """`--against DIR` (README, "Performance"): valgrind runs take minutes, so only the option
    is checked here; the script's counting is what the README's figures came from."""
    done = subprocess.run(
        [sys.executable, "tests/bench/bench_observe_daemon.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--against" in done.stdout and "off` daemon" in done.stdout
