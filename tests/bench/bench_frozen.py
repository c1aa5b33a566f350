"""Benchmark: what `@frozen` (proxy/frozen.py) costs against `@dataclass(frozen=True,
slots=True)`, which it replaced, counted in instructions with valgrind's callgrind (a count that
the machine's load does not move, unlike a timing).

Not a test (nothing here is timed inside pytest). Needs `valgrind`. Run:

    .venv/bin/python tests/bench/bench_frozen.py [--constructions 5000]

Each figure is the difference of two whole-process counts (`valgrind --tool=callgrind`'s
"Collected" total), every module's bytecode cached by a run before:

- defining the classes of proxy/types.py: its source imported as it is, against the same
  source with `frozen = dataclass(frozen=True, slots=True)` (and `dataclasses.field`), each less
  the same source with `frozen` doing nothing (so the enums and functions cancel out), all
  three importing both `proxy.frozen` and `dataclasses` first (so the modules cancel out too);
- importing proxy.types, all of it (with its decorator's module), less the bare interpreter;
- importing the decorator's module: `proxy.frozen` against `dataclasses`, after `typing`,
  `json`, `enum` and the `proxy` package, which both need anyway;
- constructing a stream event (the daemon makes one per SSE event), per construction: a loop
  of `--constructions` against the same loop calling a function that does nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DECORATOR = "from proxy.frozen import field, frozen\n"
BOTH = "import dataclasses\nimport proxy.frozen\n"
TWINS = {
    "frozen": DECORATOR,
    "dataclass": (
        "from dataclasses import dataclass, field\nfrozen = dataclass(frozen=True, slots=True)\n"
    ),
    "plain": "from proxy.frozen import field\n\n\ndef frozen(cls):\n    return cls\n",
}
EVENTS = {
    "TextDelta": "TextDelta('hello')",
    "ToolCallDelta": "ToolCallDelta(0, '{\"a')",
    "ToolCallStart": "ToolCallStart(0, 'call_1', 'get_weather')",
    "Usage": "Usage(input_tokens=3, output_tokens=4)",
    "MessageStart": "MessageStart(id='m', model='x')",
    "Finish": "Finish(StopReason.END_TURN)",
}


def _write_twins(directory: Path) -> None:
    """proxy/types.py with each meaning of `frozen`, and again (`_b`) importing both modules."""
    source = (REPO / "proxy" / "types.py").read_text()
    if DECORATOR not in source:
        raise SystemExit("proxy/types.py no longer imports `field, frozen` from proxy.frozen")
    for name, decorator in TWINS.items():
        (directory / f"types_{name}.py").write_text(source.replace(DECORATOR, decorator))
        (directory / f"types_{name}_b.py").write_text(source.replace(DECORATOR, BOTH + decorator))


def _instructions(script: str, env: dict[str, str]) -> int:
    """The instructions a fresh interpreter runs for `script` (bytecode warmed by a run before)."""
    subprocess.run([PYTHON, "-c", script], env=env, cwd=REPO, check=True)
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, "-c", script],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in:\n{done.stderr}")
    return int(found.group(1))


def _row(label: str, ours: float, theirs: float, unit: str) -> None:
    print(f"  {label:<28} {ours / 1e6 if unit == 'M' else ours:10.1f}{unit} ", end="")
    print(f"{theirs / 1e6 if unit == 'M' else theirs:10.1f}{unit} {ours / theirs:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--constructions", type=int, default=5000)
    n = parser.parse_args().constructions
    with tempfile.TemporaryDirectory() as temp:
        twins = Path(temp)
        _write_twins(twins)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": str(twins / "pycache"),
            "PYTHONPATH": os.pathsep.join([str(twins), str(REPO)]),
            "PYTHONHASHSEED": "0",
        }
        bare = _instructions("pass", env)
        print(f"instructions (callgrind); bare interpreter {bare / 1e6:.1f}M")
        print(f"  {'':<28} {'@frozen':>11} {'dataclass':>11} {'ratio':>7}")

        prelude = "import typing, json, enum, proxy\n"
        base = _instructions(prelude, env)
        module = {
            name: _instructions(prelude + f"import {name}\n", env) - base
            for name in ("proxy.frozen", "dataclasses")
        }
        _row("import the module", module["proxy.frozen"], module["dataclasses"], "M")

        define = {name: _instructions(f"import types_{name}_b\n", env) for name in TWINS}
        classes = (REPO / "proxy" / "types.py").read_text().count("\n@frozen\n")
        _row(
            f"define proxy.types' {classes} classes",
            define["frozen"] - define["plain"],
            define["dataclass"] - define["plain"],
            "M",
        )
        _row(
            "import proxy.types, all of it",
            _instructions("import types_frozen\n", env) - bare,
            _instructions("import types_dataclass\n", env) - bare,
            "M",
        )

        print(f"  per construction ({n} in a loop)")
        loop = f"for _ in range({n}):\n    make()\n"
        per: dict[str, dict[str, float]] = {}
        for name in ("frozen", "dataclass"):
            empty = _instructions(f"from types_{name} import *\nmake = lambda: None\n" + loop, env)
            per[name] = {
                event: (
                    _instructions(
                        f"from types_{name} import *\nmake = lambda: {call}\n" + loop, env
                    )
                    - empty
                )
                / n
                for event, call in EVENTS.items()
            }
        for event in EVENTS:
            _row(event, per["frozen"][event], per["dataclass"][event], "")


if __name__ == "__main__":
    main()
