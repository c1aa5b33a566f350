"""Benchmark: prompt-cache affinity on a 20-turn conversation whose first target has a 2-turn
outage. Cached-token share and cost, with affinity and without.

Not a test. Run:

    .venv/bin/python tests/bench/bench_affinity.py [--turns 20] [--outage 8] [--json]

The daemon runs in this process in front of two simulated providers on 127.0.0.1: the chain is
`zai,glm-5` (OpenAI format: automatic prefix caching) then `minimax,MiniMax-M2.5` (Anthropic
format: caching at `cache_control` breakpoints). The client is the official `anthropic` SDK
sending what Claude Code sends: a long system prompt and the last user turn marked as cache
breakpoints, the session id in `metadata.user_id`, every turn resending the ones before.

Time is simulated, so the run takes seconds: turns are `--spacing` seconds apart (default 120, a
person reading and typing between agent turns), and one clock drives the providers' caches
(entries live 5 minutes from their last use, as both providers document), the daemon's affinity
table and its health registry (so a circuit opened during the outage is half-open again two
minutes later, as it would be). During the outage every request to the first target gets a 500.

Cost uses the PRICES table below, the same for both targets so that the difference is the cache
alone (USD per million tokens; Anthropic-style ratios: a cache read costs 10% of an input token,
a cache write 125%). OpenAI-format providers report no cache writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

PRICES = {"input": 1.00, "cache_read": 0.10, "cache_write": 1.25, "output": 4.00}
SYSTEM = (
    "You are a coding agent working in a large repository. Follow the project's style "
    "guide, run the tests before you answer, and explain every change briefly. "
) * 150
FILE_EXCERPT = "def handler(request):\n    return respond(request.body)\n" * 40


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Turn:
    number: int
    served_by: str
    input_tokens: int
    cache_read: int
    cache_write: int
    output_tokens: int
    affinity: str

    @property
    def prompt(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write

    @property
    def cost(self) -> float:
        return (
            self.input_tokens * PRICES["input"]
            + self.cache_read * PRICES["cache_read"]
            + self.cache_write * PRICES["cache_write"]
            + self.output_tokens * PRICES["output"]
        ) / 1e6


@dataclass
class Run:
    affinity: bool
    turns: list[Turn] = field(default_factory=list)

    @property
    def cached_share(self) -> float:
        return sum(t.cache_read for t in self.turns) / sum(t.prompt for t in self.turns)

    @property
    def cost(self) -> float:
        return sum(t.cost for t in self.turns)

    @property
    def cold_turns(self) -> list[int]:
        return [t.number for t in self.turns if t.cache_read == 0]

    @property
    def path(self) -> str:
        """`zai x7, minimax x2, zai x11`: where the turns went, in order."""
        runs: list[list[Any]] = []
        for turn in self.turns:
            provider = turn.served_by.split(",")[0]
            if runs and runs[-1][0] == provider:
                runs[-1][1] += 1
            else:
                runs.append([provider, 1])
        return ", ".join(f"{name} x{count}" for name, count in runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "affinity": self.affinity,
            "cached_share": round(self.cached_share, 4),
            "cost_usd": round(self.cost, 6),
            "cold_turns": self.cold_turns,
            "path": self.path,
            "turns": [{**t.__dict__, "cost_usd": round(t.cost, 6)} for t in self.turns],
        }


async def run_conversation(affinity: bool, turns: int, outage: int, spacing: float) -> Run:
    import anthropic
    from aiohttp import web
    from support import config_text

    from proxy.affinity import Affinity, MemoryAffinityTable
    from proxy.appkeys import AFFINITY, HEALTH
    from proxy.config import parse_config
    from proxy.health import HealthRegistry
    from proxy.server import build_app
    from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated
    from proxy.simulate.prompt_cache import PromptCache

    clock = Clock()
    sims = [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2.5"]),
    ]
    for sim in sims:
        sim.prompt_cache = PromptCache(clock=clock)
    result = Run(affinity)
    async with run_simulated(sims) as running:
        text = config_text(running, {"default": "zai,glm-5|minimax,MiniMax-M2.5"})
        config = parse_config(text + f"[affinity]\nenabled = {str(affinity).lower()}\n", {})
        app = build_app(config)
        app[HEALTH] = HealthRegistry(config.proxy.health, clock=clock)
        app[AFFINITY] = Affinity(MemoryAffinityTable(), clock=clock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}", api_key="sk-client-test-key", max_retries=0
        )
        history: list[dict[str, Any]] = []
        user_id = json.dumps(
            {"device_id": "bench", "account_uuid": "", "session_id": "bench-session"}
        )
        try:
            for number in range(1, turns + 1):
                down = outage <= number < outage + 2
                running["zai"].plan = FaultPlan.always(Status(500)) if down else FaultPlan()
                ask = f"Turn {number}: here is the file you asked for.\n{FILE_EXCERPT}"
                history.append(
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": ask, "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                )
                raw = await client.messages.with_raw_response.create(
                    model="auto",
                    max_tokens=512,
                    metadata={"user_id": user_id},
                    system=[
                        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
                    ],
                    messages=history,  # type: ignore[arg-type]
                )
                message = await raw.parse()
                usage = message.usage
                result.turns.append(
                    Turn(
                        number,
                        f"{raw.headers['x-llmproxy-provider']},{raw.headers['x-llmproxy-model']}",
                        usage.input_tokens,
                        usage.cache_read_input_tokens or 0,
                        usage.cache_creation_input_tokens or 0,
                        usage.output_tokens,
                        raw.headers.get("x-llmproxy-affinity", ""),
                    )
                )
                history[-1] = {"role": "user", "content": [{"type": "text", "text": ask}]}
                history.append({"role": "assistant", "content": message.content[0].text})  # type: ignore[union-attr]
                clock.now += spacing
        finally:
            await client.close()
            await runner.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--outage", type=int, default=8, help="first turn of the 2-turn outage")
    parser.add_argument("--spacing", type=float, default=120.0, help="seconds between turns")
    parser.add_argument("--json", action="store_true", help="print every turn as JSON")
    args = parser.parse_args()
    logging.getLogger("llmproxy").setLevel(logging.ERROR)  # the outage's 500s are expected
    runs = [
        asyncio.run(run_conversation(flag, args.turns, args.outage, args.spacing))
        for flag in (False, True)
    ]
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return
    print(
        f"{args.turns} turns, {args.spacing:.0f} s apart; zai,glm-5 down for turns "
        f"{args.outage}-{args.outage + 1}; prices per M tokens: {PRICES}"
    )
    print(f"{'':18}{'cached share':>13}{'cost (USD)':>12}  {'cold turns':<14}path")
    for run in runs:
        label = "with affinity" if run.affinity else "without affinity"
        cold = ",".join(map(str, run.cold_turns))
        print(f"{label:18}{run.cached_share:>12.1%}{run.cost:>12.4f}  {cold:<14}{run.path}")
    without, with_ = runs
    print(f"affinity saves {1 - with_.cost / without.cost:.1%} of the cost")


if __name__ == "__main__":
    main()
