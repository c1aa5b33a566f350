"""`llmproxy serve` (foreground, --simulate, --detach), `status`, `stop` and `init`."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from cli_support import Cli, default_address_unused, free_port, subprocess_env

from cli.daemon import health
from cli.init import STARTER_CONFIG
from proxy.config import load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _wait_for(
    url: str, process: subprocess.Popen[bytes] | None = None, within: float = 15.0
) -> dict[str, object]:
    deadline = time.monotonic() + within
    while (found := health(url)) is None:
        assert process is None or process.poll() is None, "the daemon exited"
        assert time.monotonic() < deadline, f"nothing answered on {url}"
        time.sleep(0.05)
    return found


def test_serve_without_a_config_says_what_to_do(cli: Cli) -> None:
    result = cli("serve")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no config file found" in message
    assert "llmproxy init" in message and "llmproxy serve --simulate" in message


def test_serve_simulate_in_the_foreground_answers_and_stops_on_sigterm(
    tmp_path: Path, cli: Cli
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--simulate", "--port", str(port)],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        found = _wait_for(url, process)
        assert found["providers"] == ["openai-codex", "zai", "cerebras", "minimax"]
        chat = cli("chat", "--url", url, "-m", "cheapest", "Hello")
        assert chat.exit_code == 0, chat.output
        assert chat.stdout.startswith("[cerebras/llama3.1-8b] You said: Hello")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0
    assert b"simulated reference deployment" in err and url.encode() in err


def test_detach_status_stop(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = default_address_unused(monkeypatch)  # once stopped, `status` asks it
    port = free_port()
    env = subprocess_env(tmp_path)
    started = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--simulate", "--detach", "--port", str(port)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert started.returncode == 0, started.stderr.decode()
    state = tmp_path / "state"
    pid = int((state / "llmproxy.pid").read_text())
    try:
        assert f"pid {pid}".encode() in started.stderr
        status = cli("status", "--json")
        assert status.exit_code == 0, status.output
        report = orjson.loads(status.stdout)
        assert report["running"] and report["answering"] and report["detached"]
        assert report["pid"] == pid and report["url"] == f"http://127.0.0.1:{port}"
        assert report["providers"] == ["openai-codex", "zai", "cerebras", "minimax"]
        again = cli("serve", "--simulate", "--detach", "--port", str(port))
        assert again.exit_code == 2 and "already running" in again.stderr
        stopped = cli("stop")
        assert stopped.exit_code == 0 and f"stopped llmproxy (pid {pid})" in stopped.stderr
    finally:
        if (state / "llmproxy.pid").exists():  # a failed assertion must not leak the daemon
            os.kill(pid, signal.SIGTERM)
    assert not (state / "llmproxy.pid").exists()
    assert "simulated reference deployment" in (state / "llmproxy.log").read_text()
    after = cli("status")
    assert after.exit_code == 3 and "not running" in after.stdout
    assert nowhere in after.stdout
    assert cli("stop").exit_code == 0  # stopping nothing is not an error


def test_init_writes_a_private_starter_config_once(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "conf" / "llmproxy.toml"
    first = cli("init", "--path", str(target))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == STARTER_CONFIG
    config = load_config(target, {"ZAI_API_KEY": "k1", "CEREBRAS_API_KEY": "k2"})
    assert [p.name for p in config.providers] == ["zai", "cerebras"]
    target.write_text("# mine\n")
    refused = cli("init", "--path", str(target))
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert target.read_text() == "# mine\n"
    forced = cli("init", "--path", str(target), "--force")
    assert forced.exit_code == 0 and target.read_text() == STARTER_CONFIG
    assert [p.name for p in target.parent.iterdir()] == ["llmproxy.toml"]  # no temp file left


def test_init_default_path_is_where_serve_looks(cli: Cli, tmp_path: Path) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == tmp_path / "config" / "llmproxy" / "config.toml"
    # found without --config; routing needs no provider key, serving does
    routed = cli("route", "test", "auto")
    assert routed.exit_code == 0 and "zai,glm-5" in routed.stdout
    served = cli("serve")
    assert served.exit_code == 2 and "ZAI_API_KEY is not set" in served.stderr
