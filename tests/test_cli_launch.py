"""`llmproxy code` and `llmproxy codex`, with a fake `claude` / `codex` on PATH that records its
arguments and environment and exits with a status of its own."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import orjson
from cli_support import serving, subprocess_env
from support import CLIENT_KEY

from cli.daemon import health
from proxy.simulate import SimulatedProvider

REPO = Path(__file__).resolve().parent.parent
ROUTES = {"default": "zai,glm-5"}
FAKE_AGENT = """#!{python}
import json, os, sys
with open({record!r}, "w") as out:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, out)
sys.exit(7)
"""


def _fake(bin_dir: Path, name: str, record: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(FAKE_AGENT.format(python=sys.executable, record=str(record)))
    path.chmod(0o755)


def _launch(home: Path, config: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(
        home,
        LLMPROXY_CONFIG=str(config),
        PATH=path,
        ANTHROPIC_API_KEY="sk-ant-real-key-of-the-user",
    )
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_code_runs_claude_against_the_daemon_with_args_and_exit_status(tmp_path: Path) -> None:
    record = tmp_path / "claude.json"
    _fake(tmp_path / "bin", "claude", record)
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        done = _launch(
            tmp_path,
            config,
            "code",
            "-p",
            "explain",
            "--model",
            "x",
            path=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        )
        seen = orjson.loads(record.read_bytes())
        # after `--`, even llmproxy's own options reach the agent
        helped = _launch(
            tmp_path,
            config,
            "code",
            "--",
            "--help",
            path=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        )
    assert done.returncode == 7, done.stderr
    assert helped.returncode == 7 and orjson.loads(record.read_bytes())["argv"] == ["--help"]
    assert seen["argv"] == ["-p", "explain", "--model", "x"]
    assert seen["env"]["ANTHROPIC_BASE_URL"] == running.url
    assert seen["env"]["ANTHROPIC_AUTH_TOKEN"] == CLIENT_KEY
    # the user's real Anthropic key is not handed to the proxy
    assert "ANTHROPIC_API_KEY" not in seen["env"]
    assert "starting llmproxy" not in done.stderr  # one was already answering


def test_codex_gets_a_responses_provider_on_its_command_line(tmp_path: Path) -> None:
    record = tmp_path / "codex.json"
    _fake(tmp_path / "bin", "codex", record)
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        done = _launch(
            tmp_path,
            config,
            "codex",
            "exec",
            "fix it",
            path=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        )
    assert done.returncode == 7, done.stderr
    seen = orjson.loads(record.read_bytes())
    argv = seen["argv"]
    assert argv[-2:] == ["exec", "fix it"]
    overrides = dict(
        value.split("=", 1) for flag, value in itertools.pairwise(argv) if flag == "-c"
    )
    # each -c value is TOML, as the Codex CLI reads it
    assert tomllib.loads(f"v = {overrides['model_provider']}")["v"] == "llmproxy"
    provider = tomllib.loads(f"v = {overrides['model_providers.llmproxy']}")["v"]
    assert provider == {
        "name": "llmproxy",
        "base_url": running.url + "/v1",
        "wire_api": "responses",
        "env_key": "LLMPROXY_API_KEY",
    }
    assert seen["env"]["LLMPROXY_API_KEY"] == CLIENT_KEY


def test_a_missing_agent_is_a_clear_message(tmp_path: Path) -> None:
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        done = _launch(tmp_path, config, "code", path=str(tmp_path / "empty"))
    assert done.returncode == 127
    assert "`claude` is not installed" in done.stderr and "npm install" in done.stderr
    assert "Traceback" not in done.stderr


def test_code_starts_the_daemon_when_none_answers(tmp_path: Path) -> None:
    record = tmp_path / "claude.json"
    _fake(tmp_path / "bin", "claude", record)
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES, daemon=False) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        done = _launch(tmp_path, config, "code", path=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
        pid = int((tmp_path / "state" / "llmproxy.pid").read_text())
        try:
            assert done.returncode == 7, done.stderr
            assert "starting llmproxy in the background" in done.stderr
            # the daemon it started is still serving after claude exited
            answer = health(running.url)
            assert answer is not None and answer["pid"] == pid
            assert orjson.loads(record.read_bytes())["env"]["ANTHROPIC_BASE_URL"] == running.url
        finally:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while health(running.url) is not None and time.monotonic() < deadline:
                time.sleep(0.05)


def _run_cli(home: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    """`llmproxy ARGS` with no config file anywhere it would look."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=subprocess_env(home, PATH=path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_launchers_need_no_config_file_when_a_daemon_answers(tmp_path: Path) -> None:
    """quickstart: `serve --simulate` writes no config file; `--url` and `--config` name the
    daemon as they do for `chat`."""
    record = tmp_path / "codex.json"
    _fake(tmp_path / "bin", "codex", record)
    _fake(tmp_path / "bin", "claude", tmp_path / "claude.json")
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES) as running:
        by_url = _run_cli(tmp_path, "codex", "--url", running.url + "/v1", "exec", "hi", path=path)
        by_url_env = orjson.loads(record.read_bytes())["env"]
        config = tmp_path / "elsewhere.toml"
        config.write_text(running.config)
        by_config = _run_cli(tmp_path, "code", "--config", str(config), "-p", "x", path=path)
    assert by_url.returncode == 7, by_url.stderr
    assert by_url_env["LLMPROXY_API_KEY"] == "llmproxy"  # no config: a daemon without keys
    assert by_config.returncode == 7, by_config.stderr
    seen = orjson.loads((tmp_path / "claude.json").read_bytes())
    assert seen["argv"] == ["-p", "x"] and seen["env"]["ANTHROPIC_BASE_URL"] == running.url
    assert seen["env"]["ANTHROPIC_AUTH_TOKEN"] == CLIENT_KEY


def test_a_missing_codex_is_a_clear_message(tmp_path: Path) -> None:
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES) as running:
        done = _run_cli(tmp_path, "codex", "--url", running.url, path=str(tmp_path / "empty"))
    assert done.returncode == 127
    assert "`codex` is not installed" in done.stderr and "@openai/codex" in done.stderr


def test_no_daemon_and_no_agent_starts_nothing(tmp_path: Path) -> None:
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES, daemon=False) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        done = _launch(tmp_path, config, "code", path=str(tmp_path / "empty"))
        assert health(running.url) is None
    assert done.returncode == 127 and "`claude` is not installed" in done.stderr
    assert "starting llmproxy" not in done.stderr
    assert not (tmp_path / "state" / "llmproxy.pid").exists()


def test_a_url_where_nothing_answers_is_an_error(tmp_path: Path) -> None:
    _fake(tmp_path / "bin", "claude", tmp_path / "claude.json")
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES, daemon=False) as running:
        done = _run_cli(
            tmp_path, "code", "--url", running.url, path=f"{tmp_path / 'bin'}:{os.environ['PATH']}"
        )
    assert done.returncode == 3
    assert f"nothing answers at {running.url}" in done.stderr
    assert "llmproxy serve --detach" in done.stderr
    assert not (tmp_path / "claude.json").exists()
