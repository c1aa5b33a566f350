"""`llmproxy route test --send`: the request performed, every attempt accounted for."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from cli_support import Cli, serving

from proxy.simulate import FaultPlan, SimulatedProvider, Status, codex_usage_limit

ROUTES = {"default": "zai,glm-5|minimax,MiniMax-M2.5"}


def providers(
    zai: FaultPlan | None = None, minimax: FaultPlan | None = None
) -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], plan=zai),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2.5"], plan=minimax),
    ]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_send_shows_each_attempt_with_status_class_and_timing(cli: Cli) -> None:
    with serving(
        providers(zai=FaultPlan.always(codex_usage_limit())), ROUTES, daemon=False
    ) as running:
        result = cli(
            "route",
            "test",
            "auto",
            "--tools",
            "--send",
            "--config",
            str(cli.config(running.config)),
        )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    failed = next(line for line in lines if "zai,glm-5" in line and "429" in line)
    assert "quota_exhausted" in failed and " ms" in failed
    assert "The usage limit has been reached" in failed
    assert any("minimax,MiniMax-M2.5" in line and "200" in line for line in lines)
    assert "answered by minimax,MiniMax-M2.5 after 1 fallback hop in" in result.stdout
    assert "get_weather" in result.stdout  # the tool call that came back


def test_send_json_and_a_failing_request_exit_1(cli: Cli) -> None:
    down = FaultPlan.always(Status(500))
    with serving(providers(zai=down, minimax=down), ROUTES, daemon=False) as running:
        result = cli(
            "route",
            "test",
            "auto",
            "--send",
            "--stream",
            "--json",
            "--config",
            str(cli.config(running.config)),
        )
    assert result.exit_code == 1
    sent = orjson.loads(result.stdout)["send"]
    assert sent["ok"] is False and sent["served_by"] is None and sent["via"] == "in-process"
    # each target is retried once after a transient 500, then the chain is exhausted
    assert [(a["target"], a["outcome"]) for a in sent["attempts"]] == [
        ("zai,glm-5", "500"),
        ("zai,glm-5", "500"),
        ("minimax,MiniMax-M2.5", "500"),
        ("minimax,MiniMax-M2.5", "500"),
    ]
    assert all(a["error_class"] == "server_error" for a in sent["attempts"])
    assert "all targets failed" in sent["error"]


def test_send_through_a_daemon(cli: Cli) -> None:
    with serving(providers(zai=FaultPlan([Status(404)])), ROUTES) as running:
        config = cli.config(running.config)
        result = cli(
            "route",
            "test",
            "claude-sonnet-4-5",
            "--thinking",
            "--send",
            "--url",
            running.url,
            "--config",
            str(config),
            "--api-key",
            "sk-client-test-key",
        )
    assert result.exit_code == 0, result.output
    assert f"attempts (daemon {running.url})" in result.stdout
    assert "answered by minimax,MiniMax-M2.5 after 1 fallback hop" in result.stdout
    assert any("zai,glm-5" in line and "404" in line for line in result.stdout.splitlines())


def test_route_test_shows_affinity_decide_over_turns(cli: Cli) -> None:
    """Turn 1 on zai; zai fails at turn 2 and minimax serves; zai is healthy again at turn 3,
    yet the conversation stays on minimax, and `route test` says so and why."""
    zai = FaultPlan([None, Status(500), Status(500)])
    with serving(providers(zai=zai), ROUTES, daemon=False) as running:
        config = str(cli.config(running.config))
        first = cli("route", "test", "auto", "--session", "demo", "--config", config)
        result = cli(
            "route",
            "test",
            "auto",
            "--send",
            "--turns",
            "3",
            "--session",
            "demo",
            "--json",
            "--config",
            config,
        )
    assert first.exit_code == 0, first.output
    assert (
        "affinity  new conversation: routed as below; the target that serves it is kept "
        "(conversation from x-llmproxy-session)" in " ".join(first.stdout.split("\n"))
    )
    assert result.exit_code == 0, result.output
    assert "route     default" in first.stdout
    assert orjson.loads(result.stdout)["route"] == "default"
    turns = orjson.loads(result.stdout)["turns"]
    assert [t["served_by"] for t in turns] == [
        "zai,glm-5",
        "minimax,MiniMax-M2.5",
        "minimax,MiniMax-M2.5",
    ]
    assert turns[0]["affinity"].startswith("new conversation")
    assert turns[1]["affinity"].startswith("kept zai,glm-5: it served the last turn")
    assert turns[2]["affinity"].startswith("kept minimax,MiniMax-M2.5: it served the last turn")
    assert [a["target"] for a in turns[2]["attempts"]] == ["minimax,MiniMax-M2.5"]


def test_route_test_turns_through_a_daemon_report_its_affinity(cli: Cli) -> None:
    with serving(providers(), ROUTES) as running:
        config = cli.config(running.config)
        result = cli(
            "route",
            "test",
            "auto",
            "--send",
            "--turns",
            "2",
            "--url",
            running.url,
            "--config",
            str(config),
            "--api-key",
            "sk-client-test-key",
        )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "turn 1" in out and "turn 2" in out
    assert "affinity new conversation" in out
    assert "affinity kept zai,glm-5: it served the last turn" in out
