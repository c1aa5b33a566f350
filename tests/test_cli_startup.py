"""Each command imports what it uses: the commands that only talk to the daemon load neither
aiohttp nor the routing code (the timing itself is `tests/bench/bench_startup.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from cli_support import free_port, serving, subprocess_env
from support import CLIENT_KEY

from proxy.simulate import SimulatedProvider

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "proxy.routing", "proxy.fallback", "proxy.server", "rich.markdown")
PROBE = """
import sys
from cli.main import app
try:
    app(sys.argv[1:], prog_name="llmproxy")
except SystemExit:
    pass
import json
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.__stderr__)
"""


def _loaded(home: Path, *args: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return _probe(home, *args, heavy=heavy)[0]


def _probe(home: Path, *args: str, heavy: tuple[str, ...]) -> tuple[list[str], str]:
    """Which of `heavy` the command loaded, and what it wrote to stdout."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy), *args],
        cwd=REPO,
        env=subprocess_env(home, LLMPROXY_API_KEY=CLIENT_KEY),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return list(orjson.loads(done.stderr.strip().splitlines()[-1])), done.stdout


def test_daemon_only_commands_load_no_daemon_code(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert _loaded(tmp_path, "--help") == []
    assert _loaded(tmp_path, "status", "--url", dead) == []
    assert _loaded(tmp_path, "stop", "--url", dead) == []
    with serving(
        [SimulatedProvider("zai", "openai", ["glm-5"])], {"default": "zai,glm-5"}
    ) as running:
        assert _loaded(tmp_path, "chat", "--url", running.url, "Hello") == []


# What a command that only talks to the daemon does without: an event loop, httpx2 (whose
# import alone is several times the interpreter's start-up), rich (plain lines need none), and
# the classes of the whole config (only `[proxy]` is read for the address and client key).
CLIENT_ONLY = ("asyncio", "aiohttp", "httpx2", "rich", "proxy.config.model", "proxy.routing")


def test_chat_and_status_through_the_configured_daemon_load_only_the_client(
    tmp_path: Path,
) -> None:
    """The start-up budget of `chat` (README, "Start-up of the CLI") holds only while these
    stay out: each is measured by tests/bench/bench_startup.py."""
    with serving(
        [SimulatedProvider("zai", "openai", ["glm-5"])], {"default": "zai,glm-5"}
    ) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        loaded, answer = _probe(tmp_path, "chat", "--config", str(config), "Hi", heavy=CLIENT_ONLY)
        assert loaded == []
        assert "Hi" in answer  # the simulator echoes the prompt: the turn went through
        loaded, report = _probe(tmp_path, "status", "--config", str(config), heavy=CLIENT_ONLY)
        assert loaded == []
        assert running.url in report
    dead = tmp_path / "dead.toml"  # stop and reload find nothing to signal here
    assert f"port = {running.port}" in running.config
    dead.write_text(running.config.replace(f"port = {running.port}", f"port = {free_port()}"))
    for command in ("stop", "reload"):
        assert _loaded(tmp_path, command, "--config", str(dead), heavy=CLIENT_ONLY) == []


def test_route_test_runs_no_event_loop_and_loads_no_http_client(tmp_path: Path) -> None:
    """`route test` decides in this process: reading the model catalog must not bring in what
    refreshing it needs (asyncio, aiohttp), nor the daemon's client, and its lines need no rich."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[router]\ndefault = "zai,glm-5"\n[[providers]]\nname = "zai"\n'
        'api_base_url = "https://api.z.ai/api/paas/v4"\napi_key = "$ZAI_KEY"\n'
        'models = ["glm-5"]\n'
    )
    heavy = ("asyncio", "aiohttp", "httpx2", "proxy.fallback", "proxy.server", "pydantic", "rich")
    assert _loaded(tmp_path, "route", "test", "auto", "--config", str(config), heavy=heavy) == []


ENTRY_PROBE = """
import json, sys
sys.argv = ["llmproxy", *sys.argv[1:]]
from cli.main import run
try:
    run()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.__stderr__)
"""


def test_route_test_through_the_console_script_loads_no_typer(tmp_path: Path) -> None:
    """The console script runs `route test` without Typer (README, "Start-up of the CLI"),
    every form the README shows but `--send`, and its config errors too; `--help` is Typer's."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[router]\ndefault = "zai,glm-5"\n[[providers]]\nname = "zai"\n'
        'api_base_url = "https://api.z.ai/api/paas/v4"\napi_key = "$ZAI_KEY"\n'
        'models = ["glm-5"]\n'
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[router]\ndefault = 1\n")
    heavy = ("typer", "typer._click", "rich", "asyncio", "aiohttp", "httpx2")
    c = ("--config", str(config))
    for args in (
        ("auto", *c),
        ("thinking", "--tools", "--thinking", "--image", "--prompt", "Hi", *c),
        ("auto", "--tokens", "80000", "--json", "--session", "demo", *c),
        ("zai,glm-5", *c),
        ("zai,nosuch", *c),
        ("auto", "--config", str(broken)),
        ("auto", "--config", str(tmp_path / "missing.toml")),
    ):
        done = subprocess.run(
            [sys.executable, "-c", ENTRY_PROBE.format(heavy=heavy), "route", "test", *args],
            cwd=REPO,
            env=subprocess_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert orjson.loads(done.stderr.strip().splitlines()[-1]) == [], (args, done.stderr)
    help_probe = [sys.executable, "-c", ENTRY_PROBE.format(heavy=heavy), "route", "test", "-h"]
    done = subprocess.run(
        help_probe, cwd=REPO, env=subprocess_env(tmp_path), capture_output=True, text=True
    )
    assert "--tokens" in done.stdout
    assert "typer" in orjson.loads(done.stderr.strip().splitlines()[-1])


SERVE_PROBE = """
import json, sys
import proxy.serving

async def serve_until_signalled(app, host, port, **kwargs):  # where the daemon would serve
    print(json.dumps(sorted(m for m in {banned!r} if m in sys.modules)), file=sys.__stderr__)

proxy.serving.serve_until_signalled = serve_until_signalled
from cli.main import app
try:
    app(sys.argv[1:], prog_name="llmproxy")
except SystemExit:
    pass
"""


def test_the_daemon_imports_only_what_serving_needs(tmp_path: Path) -> None:
    """Issue 16: `llmproxy serve` reaches its event loop without the simulators or the daemon
    client (they are for --simulate, --detach and the other commands), without redis (and the
    OpenTelemetry it loads) unless `[state]` is shared, without rich, without the management
    API and the TOML writer under it (tomlkit, about 1 MB) unless `[management]` is enabled, and
    without the `--workers` supervisor (a worker runs none): each is memory the daemon would hold
    for nothing (README, "Daemon RSS")."""
    banned = (
        "proxy.management",
        "proxy.config_writer",
        "tomlkit",
        "proxy.simulate",
        "cli.daemon",
        "cli._address",
        "cli.workers",
        "httpx2",
        "redis",
        "opentelemetry",
        "rich",
    )
    config = tmp_path / "config.toml"
    config.write_text(
        '[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\n'
        'api_base_url = "https://api.example.com/v1"\nmodels = ["m"]\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_PROBE.format(banned=banned),
            "serve",
            "--config",
            str(config),
            "--port",
            str(free_port()),
        ],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert orjson.loads(done.stderr.strip().splitlines()[-1]) == [], done.stderr
