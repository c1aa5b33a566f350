"""`llmproxy logs`, `usage` and `statusline` over the journal a real daemon wrote."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp.test_utils import TestServer
from cli_support import Cli, subprocess_env
from support import CLIENT_KEY, config_text

from proxy.appkeys import OBSERVER
from proxy.config import parse_config
from proxy.server import build_app
from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated

ROUTES = {"default": "zai,glm-5|cerebras,llama-3.3-70b", "think": "cerebras,llama-3.3-70b"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def journaled(tmp_path: Path) -> AsyncIterator[Cli]:
    """Three requests through the daemon, journaled in the CLI's state dir: one that fell back
    (zai 500 twice, then cerebras), one plain, one on the think route."""
    cli = Cli(tmp_path)
    sims = [
        SimulatedProvider("zai", "openai", ["glm-5"], plan=FaultPlan([Status(500), Status(500)])),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]
    async with run_simulated(sims) as running:
        app = build_app(
            parse_config(config_text(running, ROUTES), env={}), state_dir=tmp_path / "state", env={}
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("/v1"))
            async with openai.AsyncOpenAI(
                base_url=base, api_key=CLIENT_KEY, max_retries=0
            ) as client:
                for model, effort in (("auto", None), ("auto", None), ("auto", "high")):
                    extra = {"reasoning_effort": effort} if effort else {}
                    await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}], **extra
                    )
        finally:
            await server.close()  # writes what the journal still holds
        assert app[OBSERVER].journal is not None and app[OBSERVER].journal.written == 3
    yield cli


async def test_logs_shows_a_table_with_the_attempts_path(journaled: Cli) -> None:
    result = journaled("logs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "id", "route"]
    assert len(lines) == 4
    assert "zai 500 -> zai 500 -> cerebras" in lines[1] and "cerebras,llama-3.3-70b" in lines[1]
    assert "default" in lines[2] and "zai,glm-5" in lines[2]
    assert "think" in lines[3]
    assert all("$" in line for line in lines[1:])


async def test_logs_filters_and_json(journaled: Cli) -> None:
    failed = json.loads(journaled("logs", "--failed", "--json").stdout)
    assert [e["path"] for e in failed] == ["zai 500 -> zai 500 -> cerebras"]
    assert [a["status"] for a in failed[0]["attempts"]] == [500, 500, 200]
    think = json.loads(journaled("logs", "--route", "think", "--json").stdout)
    assert [e["served"] for e in think] == ["cerebras,llama-3.3-70b"]
    assert len(json.loads(journaled("logs", "-n", "2", "--json").stdout)) == 2
    assert json.loads(journaled("logs", "--since", "1h", "--json").stdout)
    assert json.loads(journaled("logs", "--since", "2999-01-01", "--json").stdout) == []
    bad = journaled("logs", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since" in bad.output


async def test_usage_by_provider_route_and_day(journaled: Cli) -> None:
    result = journaled("usage")
    assert result.exit_code == 0, result.output
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert table["cerebras"][1] == "2" and table["zai"][1] == "1" and table["total"][1] == "3"
    rows = json.loads(journaled("usage", "--by", "route", "--json").stdout)
    assert {r["name"]: r["requests"] for r in rows} == {"default": 2, "think": 1}
    days = json.loads(journaled("usage", "--by", "day", "--json").stdout)
    assert len(days) == 1 and days[0]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert journaled("usage", "--by", "colour").exit_code == 2


async def test_statusline_prints_the_latest_request_in_one_line(journaled: Cli) -> None:
    # As Claude Code runs it: a separate process with the session JSON on stdin.
    session = {"session_id": "abc", "model": {"id": "claude-sonnet-4-5", "display_name": "S"}}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "statusline",
        cwd=REPO,
        env=subprocess_env(journaled.home),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(session).encode()), 60)
    assert process.returncode == 0, err
    line = out.decode()
    assert line.count("\n") == 1
    assert line.startswith("llmproxy: cerebras,llama-3.3-70b · think · $")


def test_statusline_and_logs_without_a_journal(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("statusline", input="{}").stdout == "llmproxy: no requests yet\n"
    missing = cli("logs")
    assert missing.exit_code == 1 and "no request journal" in missing.output


def test_statusline_loads_no_daemon_code(tmp_path: Path) -> None:
    """Claude Code runs it after every message: it reads the journal and nothing else."""
    from test_cli_startup import HEAVY, PROBE

    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), "statusline"],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.stdout == "llmproxy: no requests yet\n"
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


async def test_logs_follow_prints_requests_as_they_are_recorded(journaled: Cli) -> None:
    from proxy.observe.journal import Journal
    from proxy.observe.record import RequestRecord
    from proxy.observe.settings import JournalSettings
    from proxy.types import Attempt, Target, Usage

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "logs",
        "--follow",
        "--json",
        "-n",
        "1",
        cwd=REPO,
        env=subprocess_env(journaled.home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        assert first["route"] == "think"  # the newest recorded request
        target = Target("minimax", "MiniMax-M2.5")
        writer = Journal(journaled.home / "state" / "requests.db", JournalSettings())
        writer.start()  # as a running daemon would
        writer.add(
            RequestRecord(
                id="req_follow",
                started=time.time(),
                client_api="anthropic",
                stream=True,
                requested_model="claude-sonnet-4-5",
                route="think",
                reason="test",
                served=target,
                attempts=(Attempt(target, 200, None, 5.0),),
                usage=Usage(10, 2),
                cost=None,
                ttft_ms=3.0,
                total_ms=9.0,
                status=200,
                outcome="ok",
            )
        )
        await asyncio.to_thread(writer.close)
        fresh = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert fresh["id"] == "req_follow" and fresh["served"] == "minimax,MiniMax-M2.5"
    finally:
        process.terminate()
        await process.wait()
