"""Where a daemon's CPU goes: shares of a py-spy profile by layer.

Not a test. Profile the daemon while `bench_proxy.py` drives it, then summarise:

    py-spy record -p DAEMON_PID -d 20 -r 200 -f raw -o /tmp/daemon.raw --nonblocking
    .venv/bin/python tests/bench/profile_shares.py /tmp/daemon.raw

Each sample is charged to its innermost Python frame (py-spy without `--native` charges C code,
syscalls included, to the Python line that called it): the upstream client (llmproxy's own,
`proxy/security/http1.py` and `http1_wire.py`, or in older checkouts aiohttp's: a frame under
`ClientSession._request` or the connector), the rest of llmproxy's code (`proxy/`, `cli/`),
aiohttp's server (the rest of aiohttp: the HTTP server, responses, the shared writer and parser
when no client frame is on the stack), the event loop (asyncio, uvloop) and the rest (other
libraries, the standard library).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

LAYERS = ("llmproxy", "aiohttp server", "upstream client", "event loop", "other")
UPSTREAM_CLIENT = ("(proxy/security/http1", "(aiohttp/client", "(aiohttp/connector")
"""llmproxy's own HTTP/1.1 client, or aiohttp's `ClientSession` in checkouts from before it."""


def layer(frames: list[str]) -> str:
    """A frame reads `function (path/module.py:line)`, the path relative to its sys.path entry."""
    leaf = frames[-1]
    if any(part in leaf for part in UPSTREAM_CLIENT):
        return "upstream client"
    if "(proxy/" in leaf or "(cli/" in leaf:
        return "llmproxy"
    if leaf.startswith("run_app (aiohttp/"):  # uvloop's C loop runs under run_app's frame
        return "event loop"
    if "(aiohttp/" in leaf:
        client = any(part in f for f in frames for part in UPSTREAM_CLIENT[1:])
        return "upstream client" if client else "aiohttp server"
    if "(asyncio/" in leaf or "(uvloop" in leaf or "(selectors" in leaf:
        return "event loop"
    return "other"


def main() -> None:
    shares: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in Path(sys.argv[1]).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        shares[layer(frames)] += int(count)
        leaves[frames[-1]] += int(count)
    total = sum(shares.values())
    print(f"{total} samples")
    for name in LAYERS:
        print(f"  {name:15} {shares[name] / total:6.1%}")
    print("busiest lines:")
    for frame, count in leaves.most_common(12):
        print(f"  {count / total:6.1%}  {frame[:110]}")


if __name__ == "__main__":
    main()
