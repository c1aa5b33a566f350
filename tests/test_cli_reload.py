"""Reload without a restart: `llmproxy reload` (SIGHUP), the opt-in file watch, `.env` next to
the config; a config that does not load is refused with its key path and the running one kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import orjson
import pytest
from cli_support import Cli, free_port, serving, subprocess_env
from security_support import Apps, call
from support import CLIENT_KEY

from cli.daemon import health
from proxy.config import load_config, parse_config
from proxy.errors import ConfigError
from proxy.simulate import SimulatedProvider

REPO = Path(__file__).resolve().parent.parent
ROUTES = {"default": "zai,glm-5"}
ALIAS = '\n[[router.model_mappings]]\nfrom = "quick"\nto = "zai,glm-5"\n'


def _models(url: str) -> set[str]:
    response = httpx2.get(
        url + "/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}, trust_env=False
    )
    return {m["id"] for m in response.json()["data"]}


def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


@contextlib.contextmanager
def _foreground(tmp_path: Path, *extra: str) -> Iterator[tuple[str, Path, Cli]]:
    """A foreground daemon on a config file: its URL, the file, a CLI beside it."""
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES, daemon=False) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--config", str(config), *extra],
            cwd=REPO,
            env=subprocess_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _until(lambda: health(running.url) is not None or process.poll() is not None, 20)
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            yield running.url, config, Cli(tmp_path)
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=15)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, Path, Cli]]:
    with _foreground(tmp_path) as running:
        yield running


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[str, Path, Cli]]:
    with _foreground(tmp_path, "--watch") as running:
        yield running


def test_reload_applies_a_new_config_without_a_restart(daemon: tuple[str, Path, Cli]) -> None:
    url, config, cli = daemon
    pid = health(url)["pid"]  # type: ignore[index]
    assert "quick" not in _models(url)
    config.write_text(config.read_text() + ALIAS)
    done = cli("reload", "--url", url)
    assert done.exit_code == 0, done.output
    assert f"reloaded {config}" in done.stderr
    assert "quick" in _models(url)
    assert health(url)["pid"] == pid  # type: ignore[index]


def test_an_invalid_config_is_refused_and_the_running_one_kept(
    daemon: tuple[str, Path, Cli],
) -> None:
    url, config, cli = daemon
    good = config.read_text()
    config.write_text(good.replace('default = "zai,glm-5"', 'default = "nosuch,glm-5"'))
    done = cli("reload", "--url", url)
    assert done.exit_code == 1
    message = " ".join(done.stderr.split())
    assert "config rejected, the running one is kept" in message and "router.default" in message
    assert "zai,glm-5" in _models(url)  # still serving the old config
    config.write_text(good + ALIAS)
    assert cli("reload", "--url", url).exit_code == 0
    assert "quick" in _models(url)


def test_reload_without_a_daemon_says_so(tmp_path: Path) -> None:
    done = Cli(tmp_path)("reload", "--url", "http://127.0.0.1:9")
    assert done.exit_code == 3 and "llmproxy serve --detach" in done.stderr


@pytest.mark.slow
def test_watch_reloads_when_the_file_or_its_env_changes(watched: tuple[str, Path, Cli]) -> None:
    url, config, _ = watched
    config.write_text(config.read_text() + ALIAS)
    _until(lambda: "quick" in _models(url))
    # a variable from the .env next to the config, picked up on change
    config.write_text(config.read_text() + ALIAS.replace('"quick"', '"${ALIAS_NAME:-none}"'))
    _until(lambda: "none" in _models(url))
    (config.parent / ".env").write_text("ALIAS_NAME=fromenv\n")
    _until(lambda: "fromenv" in _models(url))


# --- .env and ${VAR:-default} ------------------------------------------------------------


def test_dotenv_next_to_the_config_fills_what_the_environment_lacks(tmp_path: Path) -> None:
    with serving([SimulatedProvider("zai", "openai", ["glm-5"])], ROUTES, daemon=False) as running:
        text = running.config.replace('api_key = "sim-key"', 'api_key = "$ZAI_API_KEY"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    (tmp_path / ".env").write_text(
        "# keys\nexport ZAI_API_KEY='from-dotenv'\nOTHER=\"x y\"  \n\nPLAIN=a # note\n"
    )
    assert load_config(path, {}).providers[0].api_key == "from-dotenv"
    # the environment wins over the file
    assert load_config(path, {"ZAI_API_KEY": "from-env"}).providers[0].api_key == "from-env"
    (tmp_path / ".env").write_text("this is not a line\n")
    with pytest.raises(ConfigError, match=r"\.env, line 1: expected NAME=value"):
        load_config(path, {})


def test_reload_says_which_changes_need_a_restart(daemon: tuple[str, Path, Cli]) -> None:
    url, config, cli = daemon
    text = config.read_text()
    config.write_text(
        text.replace("[proxy]\n", "[proxy]\ntimeout_ms = 123000\n", 1).replace(
            f'api_key = "{CLIENT_KEY}"', 'api_key = "another-key"', 1
        )
    )
    done = cli("reload", "--url", url)
    assert done.exit_code == 0, done.output
    assert "a restart is needed to change proxy.api_keys" in " ".join(done.stderr.split())
    # the client key in force is still the one the daemon started with
    assert _models(url)


@pytest.mark.parametrize(("peer", "told"), [("127.0.0.1", True), ("203.0.113.9", False)])
async def test_health_tells_pid_and_reload_outcome_to_this_machine_only(
    peer: str, told: bool
) -> None:
    text = (
        '[proxy]\napi_key = "k"\n[router]\ndefault = "zai,glm-5"\n[[providers]]\n'
        'name = "zai"\napi_base_url = "https://api.z.ai/v1"\nmodels = ["glm-5"]\n'
    )
    apps = Apps()
    try:
        served = await apps.start(parse_config(text, {}), peer=peer)
        body = (await call("GET", served.url + "/health")).json()
    finally:
        await apps.close()
    assert body["status"] == "ok"
    assert ("pid" in body and "config" in body) is told


def test_status_and_reload_show_targets_to_the_client_key_they_know(
    daemon: tuple[str, Path, Cli],
) -> None:
    """The daemon has client keys: `/health` lists providers and targets only to a key holder,
    so `status` sends the config's key, or `--api-key` / `$LLMPROXY_API_KEY`."""
    url, config, cli = daemon
    assert "zai,glm-5" in _models(url)
    chat = cli("chat", "--url", url, "--api-key", CLIENT_KEY, "-m", "zai,glm-5", "Hello")
    assert chat.exit_code == 0, chat.output  # the target has seen traffic: it is listed

    def report(*args: str, key: str | None = None) -> dict[str, object]:
        cli.env["LLMPROXY_API_KEY"] = key
        done = cli("status", "--json", "--url", url, *args)
        assert done.exit_code == 0, done.output
        return dict(orjson.loads(done.stdout))

    for shown in (
        report("--config", str(config)),
        report(key=CLIENT_KEY),
        report("--api-key", CLIENT_KEY),
    ):
        assert shown["providers"] == ["zai"]
        assert [t["target"] for t in shown["targets"]] == ["zai,glm-5"]  # type: ignore[attr-defined]
    for hidden in (report(), report(key="not-the-key")):  # no config found, or a wrong key
        assert hidden["answering"] and hidden["providers"] == [] and hidden["targets"] == []
    cli.env["LLMPROXY_API_KEY"] = None
    text = cli("status", "--url", url, "--config", str(config))
    assert text.exit_code == 0 and "providers  zai" in text.stdout
    config.write_text(config.read_text() + ALIAS)
    done = cli("reload", "--url", url, "--config", str(config))
    assert done.exit_code == 0, done.output
    assert report("--config", str(config))["providers"] == ["zai"]


@contextlib.contextmanager
def _detached_simulation(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`serve --simulate --detach` on a free port: its URL and pid; stopped afterwards."""
    port = free_port()
    started = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--simulate", "--detach", "--port", str(port)],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        capture_output=True,
        timeout=30,
    )
    assert started.returncode == 0, started.stderr.decode()
    pid = int((tmp_path / "state" / "llmproxy.pid").read_text())
    try:
        yield f"http://127.0.0.1:{port}", pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_explicit_config_wins_over_the_detached_daemon(tmp_path: Path) -> None:
    with (
        _detached_simulation(tmp_path) as (detached, detached_pid),
        _foreground(tmp_path) as (url, config, cli),
    ):
        status = cli("status", "--json", "--config", str(config))
        report = orjson.loads(status.stdout)
        assert report["url"] == url and not report["detached"]
        foreground_pid = health(url)["pid"]  # type: ignore[index]
        assert report["pid"] == foreground_pid != detached_pid
        config.write_text(config.read_text() + ALIAS)
        reloaded = cli("reload", "--config", str(config))
        assert reloaded.exit_code == 0, reloaded.output
        assert "quick" in _models(url)
        stopped = cli("stop", "--config", str(config))
        assert stopped.exit_code == 0, stopped.output
        assert f"pid {foreground_pid}" in stopped.stderr
        _until(lambda: health(url) is None)
        assert _alive(detached_pid) and health(detached) is not None


def test_reload_of_a_daemon_without_a_config_file_keeps_it_running(tmp_path: Path) -> None:
    with _detached_simulation(tmp_path) as (url, pid):
        done = Cli(tmp_path)("reload")
        assert done.exit_code == 1
        assert "nothing to reload: no config file" in done.stderr
        assert _alive(pid) and health(url) is not None
        assert (
            "nothing to reload: no config file" in (tmp_path / "state" / "llmproxy.log").read_text()
        )


def test_watch_without_a_config_file_says_it_has_nothing_to_watch(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--simulate", "--watch", "--port", str(port)],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _until(
            lambda: health(f"http://127.0.0.1:{port}") is not None or process.poll() is not None, 20
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert b"--watch: nothing to watch, this daemon has no config file" in err
