"""`llmproxy providers status`: configuration, live health from the daemon, and probes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from cli_support import Cli, serving
from support import CLIENT_KEY

from proxy.simulate import (
    FaultPlan,
    SimulatedProvider,
    Status,
    codex_usage_limit,
    openai_rate_limit,
    unauthorized,
)

ROUTES = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _sims(zai: FaultPlan | None = None) -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], api_key="zai-secret-value", plan=zai),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]


def test_status_lists_providers_and_never_prints_a_key(cli: Cli) -> None:
    with serving(_sims(), ROUTES, daemon=False) as running:
        text = running.config.replace('api_key = "sim-key"', 'api_key = ""')
        config = str(cli.config(text))
        table = cli("providers", "status", "--config", config)
        data = cli("providers", "status", "--config", config, "--json")
        zai_url = running.sims["zai"].base_url
    assert table.exit_code == 0, table.output
    assert "zai-secret-value" not in table.output + data.output
    rows = {r["name"]: r for r in orjson.loads(data.stdout)["providers"]}
    # no key configured: a key-less (local) provider, not a missing key
    assert rows["zai"]["key"] == "present" and rows["cerebras"]["key"] == "none"
    assert rows["zai"]["base_url"] == zai_url
    assert rows["zai"]["models"] == ["glm-5"] and rows["zai"]["format"] == "openai"
    assert rows["zai"]["state"] is None  # no daemon: no live health
    assert "no daemon answered" in table.stderr
    line = next(line for line in table.stdout.splitlines() if line.strip().startswith("zai"))
    assert "present" in line and "glm-5" in line


def test_status_shows_the_daemons_live_health(cli: Cli) -> None:
    with serving(_sims(FaultPlan.always(Status(500))), ROUTES) as running:
        for _ in range(2):  # each request: zai fails twice (one retry), cerebras answers
            _ask(running.url)
        data = cli("providers", "status", "--config", str(cli.config(running.config)), "--json")
    assert data.exit_code == 0, data.output
    rows = {r["name"]: r for r in orjson.loads(data.stdout)["providers"]}
    assert rows["zai"]["state"] == "open"  # 3+ consecutive server errors opened the breaker
    assert rows["zai"]["success_rate"] == 0.0
    assert rows["cerebras"]["state"] == "closed" and rows["cerebras"]["success_rate"] == 1.0
    assert rows["cerebras"]["latency_ms"] is not None and rows["cerebras"]["requests"] == 2


def _ask(url: str) -> None:
    async def go() -> None:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/v1/chat/completions", json=body, headers=headers) as response,
        ):
            assert response.status == 200

    asyncio.run(go())


def test_probe_classifies_every_configured_model(cli: Cli) -> None:
    sims = [
        SimulatedProvider("ok", "openai", ["m"]),
        SimulatedProvider(
            "busy", "openai", ["m"], plan=FaultPlan.always(openai_rate_limit(retry_after=None))
        ),
        SimulatedProvider("spent", "openai", ["m"], plan=FaultPlan.always(codex_usage_limit())),
        SimulatedProvider(
            "locked", "anthropic", ["m"], plan=FaultPlan.always(unauthorized("anthropic"))
        ),
        SimulatedProvider("gone", "openai", ["m"], plan=FaultPlan.always(Status(503))),
        SimulatedProvider("renamed", "openai", ["other"]),
    ]
    with serving(sims, {"default": "ok,m"}, daemon=False) as running:
        text = running.config.replace('models = ["other"]', 'models = ["m", "*"]')
        result = cli("providers", "status", "--probe", "--json", "--config", str(cli.config(text)))
        table = cli("providers", "status", "--probe", "--config", str(cli.config(text)))
    assert result.exit_code == 1  # not everything is reachable
    verdicts = {p["target"]: p["verdict"] for p in orjson.loads(result.stdout)["probes"]}
    assert verdicts == {
        "ok,m": "reachable",
        "busy,m": "rate limited",
        "spent,m": "quota exhausted",
        "locked,m": "auth failed",
        "gone,m": "down",
        "renamed,m": "model missing",  # the glob "*" names no model to ask for
    }
    assert table.exit_code == 1 and "quota exhausted" in table.stdout


def test_refresh_is_registered(cli: Cli) -> None:
    result = cli("providers", "refresh", "--help")
    assert result.exit_code == 0 and "Examples" in result.stdout
