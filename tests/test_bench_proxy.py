"""The README's performance table comes from `tests/bench/bench_proxy.py`: the script must keep
working. A tiny run (no timing is judged here: the script checks its targets itself)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_benchmark_prints_each_case_beside_its_floor() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "tests/bench/bench_proxy.py",
            "--requests",
            "5",
            "--seconds",
            "0.3",
            "--concurrency",
            "2",
            "--case",
            "claude-code>openai stream 20",
            "--no-rss",
            "--markdown",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed, which is not judged here
    row = next(
        line
        for line in done.stdout.splitlines()
        if line.startswith("| claude-code>openai stream 20 |")
    )
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[5].endswith("ms") and cells[6].endswith("x")  # the floor and the ratio to it
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("claude-code>openai"))
    # the upstream's wake-ups per request: what moves the floor (README, "Performance")
    assert re.search(r"upstream wake-ups \d+\.\d\d( |$)", line), line
    assert "every target met" in done.stdout or "target missed" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", ["openai>openai non-stream", "anthropic>anthropic stream 20"])
def test_the_reference_relays_are_measured_like_the_daemon(case: str) -> None:
    """`--relay`: the README's latency floor. A relay that answered wrongly would stop the run
    (the benchmark's client refuses an answer that is not a 200)."""
    done = subprocess.run(
        [
            sys.executable,
            "tests/bench/bench_proxy.py",
            *("--requests", "5", "--seconds", "0.3", "--concurrency", "2", "--case", case),
            *("--relay", "aiohttp", "--relay", "httptools", "--no-rss", "--markdown"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    for kind in ("aiohttp", "httptools"):
        row = next(
            ln for ln in done.stdout.splitlines() if ln.startswith(f"| relay {kind}: {case} |")
        )
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1].endswith("ms") and cells[6].endswith("x")  # added p50, floor ratio
        if "non-stream" not in case:
            assert cells[3].endswith("ms")  # added TTFT


@pytest.mark.parametrize(
    "script", ["bench_state.py", "bench_large_bodies.py", "bench_affinity.py", "bench_startup.py"]
)
def test_the_other_benchmark_scripts_still_load(script: str) -> None:
    """Their README figures come from them too: a script whose imports broke (as when
    `bench_proxy.py` was rewritten under them) fails here, not when someone next measures."""
    done = subprocess.run(
        [sys.executable, f"tests/bench/{script}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
