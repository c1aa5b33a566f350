"""Benchmark: how long the CLI takes to start, as a ratio to a bare `python -c pass` measured
in the same run (so a slow or busy machine moves both).

Not a test (nothing here is timed inside pytest). Run:

    .venv/bin/python tests/bench/bench_startup.py [--runs 10]

Each command runs `--runs` times in a fresh process, the commands in turn (one run of each, then
the next round), so that the machine's load moves them alike; the median wall time is reported:

- `llmproxy --help`
- `llmproxy route test auto` on a config with two providers (no network); also with
  `--tokens 80000 --json`, and on a config with an error
- `llmproxy chat` against a local daemon: the time to the answer's first byte on stdout,
  the daemon running in its own process in front of a simulated provider that answers at once
- `llmproxy status` against that daemon

With `--imports`: only the CPU that each layer of `route test`'s imports adds (the typed
values, orjson, the config package...), each as a ratio to the bare interpreter.

Targets: `--help` and `route test` within 4x of the bare interpreter, `chat` within 6x.

Every command runs with its bytecode cached, as after any install (pip compiles what it
installs; an editable checkout writes `__pycache__` on first use): `PYTHONDONTWRITEBYTECODE`
is dropped and `PYTHONPYCACHEPREFIX` points into the run's temp dir, so the checkout is left
untouched and the warm-up run writes the cache. Without it every run compiles llmproxy's own
modules from source again (about 0.2 s of the CLI's start-up on this machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PYTHON = sys.executable
LLMPROXY = [PYTHON, "-m", "cli"]
TARGETS = {
    "--help": 4.0,
    "route test": 4.0,
    "  --tokens --json": 4.0,
    "  config error": 4.0,
    "chat (first byte)": 6.0,
    "status": None,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cached_bytecode(directory: str) -> dict[str, str]:
    """This environment, with bytecode written to and read from `directory`."""
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**inherited, "PYTHONPYCACHEPREFIX": str(Path(directory) / "pycache")}


Run = tuple[float, float]  # (wall seconds, the process's CPU seconds: user + system)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(command: list[str], env: dict[str, str], check: bool = True) -> Run:
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=check,
        cwd=REPO,
    )
    return time.perf_counter() - started, _children_cpu() - cpu


def _first_byte(command: list[str], env: dict[str, str]) -> Run:
    """Wall time to the first byte on stdout; CPU of the whole run (to exit)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO
    )
    assert process.stdout is not None
    first = process.stdout.read(1)
    elapsed = time.perf_counter() - started
    process.stdout.read()
    if process.wait() != 0 or not first:
        raise RuntimeError(f"{' '.join(command)} failed")
    return elapsed, _children_cpu() - cpu


def _median(runs: int, measure: Callable[[], Run]) -> Run:
    return _medians(runs, {"": measure})[""]


def _medians(runs: int, measures: dict[str, Callable[[], Run]]) -> dict[str, Run]:
    """Each measure `runs` times, taken in turn (one of each, then again), so that a change in
    the machine's load during the run moves every command alike and the ratios hold."""
    for measure in measures.values():
        measure()  # warm the file cache (and write the bytecode cache) once
    measured: dict[str, list[Run]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            measured[name].append(measure())
    return {
        name: (
            statistics.median(wall for wall, _ in samples),
            statistics.median(cpu for _, cpu in samples),
        )
        for name, samples in measured.items()
    }


# What `route test` imports, in layers: each row adds its modules to the ones above it. The
# console script runs it without Typer (`cli._route_argv`).
LAYERS = (
    ("proxy.types (with @frozen)", "proxy.types"),
    ("orjson", "orjson"),
    ("the config's values", "proxy.config.model"),
    ("the config loader", "proxy.config.load"),
    ("route test's own modules", "cli._route_test"),
    ("the entry point", "cli.main, cli._route_argv"),
)


def breakdown(runs: int, env: dict[str, str]) -> None:
    """The CPU each layer of imports adds, as a ratio to the bare interpreter's own CPU."""
    _, bare = _median(runs, lambda: _wall([PYTHON, "-c", "pass"], env))
    print(
        f"CPU each layer of route test's imports adds (median of {runs}; bare {bare * 1000:.0f} ms)"
    )
    modules: list[str] = []
    previous = bare
    for label, names in LAYERS:
        modules.append(names)
        _, cpu = _median(runs, lambda: _wall([PYTHON, "-c", "import " + ", ".join(modules)], env))
        print(f"  {label:<30} {(cpu - previous) * 1000:6.0f} ms {(cpu - previous) / bare:6.1f}x")
        previous = cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--imports",
        action="store_true",
        help="Only show the CPU each layer of route test's imports adds.",
    )
    args = parser.parse_args()
    if args.imports:
        with tempfile.TemporaryDirectory(prefix="llmproxy-bench-") as directory:
            breakdown(args.runs, _cached_bytecode(directory))
        return

    from proxy.simulate import SimulatedProvider
    from proxy.simulate.runner import SimulatorThread

    sims = SimulatorThread(
        [
            SimulatedProvider("zai", "openai", ["glm-5"]),
            SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
        ]
    )
    urls = {name: sim.base_url for name, sim in sims.start().items()}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="llmproxy-bench-") as directory:
        config = Path(directory) / "config.toml"
        config.write_text(
            f"[proxy]\nport = {port}\n[security.ssrf_protection]\nallow_localhost = true\n"
            '[router]\ndefault = "zai,glm-5|cerebras,llama-3.3-70b"\n'
            + "".join(
                f'[[providers]]\nname = "{name}"\napi_base_url = "{base}"\n'
                f'api_key = "$KEY"\nmodels = ["{model}"]\n'
                for (name, base), model in zip(
                    urls.items(), ["glm-5", "llama-3.3-70b"], strict=True
                )
            )
        )
        broken = Path(directory) / "broken.toml"  # a config error, as a user meets one
        broken.write_text('[router]\ndefault = "nosuch,model"\n')
        env = {
            **_cached_bytecode(directory),
            "LLMPROXY_CONFIG": str(config),
            "LLMPROXY_STATE_DIR": directory,
            "KEY": "bench-key",
            "COLUMNS": "100",
        }
        daemon = subprocess.Popen(
            [*LLMPROXY, "serve"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            from cli._address import health

            deadline = time.monotonic() + 30
            while health(url) is None:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not start")
                time.sleep(0.05)
            client_env = {k: v for k, v in env.items() if k != "KEY"}  # no provider key here
            results = _medians(
                args.runs,
                {
                    "bare python": lambda: _wall([PYTHON, "-c", "pass"], env),
                    "--help": lambda: _wall([*LLMPROXY, "--help"], env),
                    "route test": lambda: _wall([*LLMPROXY, "route", "test", "auto"], client_env),
                    "  --tokens --json": lambda: _wall(
                        [*LLMPROXY, "route", "test", "auto", "--tokens", "80000", "--json"],
                        client_env,
                    ),
                    "  config error": lambda: _wall(
                        [*LLMPROXY, "route", "test", "auto", "--config", str(broken)],
                        client_env,
                        check=False,
                    ),
                    "chat (first byte)": lambda: _first_byte(
                        [*LLMPROXY, "chat", "Hello"], client_env
                    ),
                    "status": lambda: _wall([*LLMPROXY, "status"], client_env),
                },
            )
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            sims.stop()
    bare, bare_cpu = results["bare python"]
    print(f"median of {args.runs} runs each, {PYTHON}")
    # The target is on wall time; CPU time is beside it because a shared machine's load moves
    # wall time far more (chat's CPU is its whole run, to exit, not to the first byte).
    print(f"{'command':<20} {'median':>9} {'ratio':>7}  {'cpu':>9} {'ratio':>7}  target")
    for name, (seconds, cpu) in results.items():
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else (f"<= {target:.0f}x " + ("met" if seconds / bare <= target else "MISSED"))
        )
        print(
            f"{name:<20} {seconds * 1000:7.0f} ms {seconds / bare:6.1f}x  "
            f"{cpu * 1000:6.0f} ms {cpu / bare_cpu:6.1f}x  {verdict}"
        )


if __name__ == "__main__":
    main()
