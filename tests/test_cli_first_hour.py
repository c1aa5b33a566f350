"""What a new user meets in the first hour at the terminal, each as the user meets it: answers
on a real 80-column pseudo terminal, piped input, bracketed names in messages, a port in use,
commands that need no provider key while a daemon runs, and the smaller surprises."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pexpect
import pytest
from cli_support import Cli, free_port, serving, subprocess_env
from codex_sims import codex_keys, seed_store
from support import CLIENT_KEY

from cli.daemon import health
from proxy.simulate import CutAfter, FaultPlan, SimulatedProvider, reply_text

REPO = Path(__file__).resolve().parent.parent
ROUTES = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}
# Words that can be told apart, about 1,800 characters: 23 lines at 80 columns.
LONG = " " + " ".join(f"w{i:03d}" for i in range(360))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def providers(**zai: Any) -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], **zai),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _words(screen: str) -> set[str]:
    return set(re.findall(r"w\d{3}", ANSI.sub("", screen)))


def _terminal(home: Path, *args: str) -> Any:
    env = subprocess_env(
        home, TERM="xterm-256color", COLUMNS="80", LINES="24", LLMPROXY_API_KEY=CLIENT_KEY
    )
    return pexpect.spawn(
        sys.executable,
        ["-m", "cli", *args],
        cwd=str(REPO),
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(24, 80),
    )


# --- 1. a long answer on an 80-column terminal is shown whole --------------------------------


def test_one_shot_answer_is_shown_whole_at_80_columns(tmp_path: Path) -> None:
    with serving(providers(extra_text=LONG, chunk_delay=0.002), ROUTES) as running:
        child = _terminal(tmp_path, "chat", "--url", running.url, "Hello")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
    assert _words(child.before) == {f"w{i:03d}" for i in range(360)}


def test_interactive_answers_are_shown_whole_at_80_columns(tmp_path: Path) -> None:
    with serving(providers(extra_text=LONG), ROUTES) as running:
        child = _terminal(tmp_path, "chat", "--url", running.url)
        child.expect("/help for commands")
        child.expect("> ")
        child.sendline("Hello")
        child.expect(r"zai,glm-5 · ")  # the footer comes after the whole answer
        assert _words(child.before) == {f"w{i:03d}" for i in range(360)}
        child.expect("> ")
        # 7: a model that cannot be served is refused at once, and the model stays
        child.sendline("/model nosuch,model")
        child.expect("not configured")
        child.expect("the model stays auto")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0


# --- 2. piped input and a prompt ------------------------------------------------------------


def test_piped_content_comes_before_the_prompt(cli: Cli) -> None:
    with serving(providers(), ROUTES) as running:
        result = cli(
            "chat",
            "--url",
            running.url,
            "--api-key",
            CLIENT_KEY,
            "review this",
            input="diff --git a/x b/x\n+new line\n",
        )
        sent = running.sims["zai"].requests[0].body["messages"][-1]["content"]
    assert result.exit_code == 0, result.output
    assert sent == "diff --git a/x b/x\n+new line\n\nreview this"


# --- 3. no text is ever read as markup --------------------------------------------------------


def test_bracketed_table_names_survive_in_error_messages(cli: Cli) -> None:
    with serving(providers(), ROUTES, daemon=False) as running:
        text = running.config.replace("[proxy]\n", '[proxy]\nhost = "0.0.0.0"\n', 1)
        text = text.replace(f'api_key = "{CLIENT_KEY}"\n', "", 1)
        result = cli("serve", "--config", str(cli.config(text)))
    assert result.exit_code == 2
    assert "Set [proxy] api_key" in " ".join(result.stderr.split())


def test_a_value_with_closing_markup_never_crashes(cli: Cli) -> None:
    with serving(providers(), ROUTES, daemon=False) as running:
        config = str(cli.config(running.config))
        routed = cli("route", "test", "auto", "--prompt", "odd[/x]", "--config", config)
        written = cli("init", "--path", str(cli.home / "odd[/x]name" / "config.toml"))
        bad_url = cli("chat", "--url", "http://[/x]:1", "Hi")
    assert routed.exit_code == 0, routed.output
    assert written.exit_code == 0, written.output
    assert "odd[/x]name" in written.stdout
    assert bad_url.exit_code == 2 and "[/x]" in bad_url.stderr
    assert "Traceback" not in routed.output + bad_url.output


# --- 4. a port in use is one line ---------------------------------------------------------


@pytest.fixture
def taken_port() -> Any:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_port_in_use_is_one_line_in_the_foreground_and_detached(
    tmp_path: Path, taken_port: int
) -> None:
    env = subprocess_env(tmp_path)
    command = [sys.executable, "-m", "cli", "serve", "--simulate", "--port", str(taken_port)]
    foreground = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    detached = subprocess.run(
        [*command, "--detach"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert foreground.returncode == 1
    lines = foreground.stderr.strip().splitlines()
    assert len(lines) == 1, foreground.stderr
    assert f"port {taken_port} on 127.0.0.1 is in use" in lines[0] and "--port" in lines[0]
    assert "listening on" not in foreground.stderr and "Traceback" not in foreground.stderr
    assert detached.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is in use" in detached.stderr.splitlines()[0]
    assert "Traceback" not in detached.stderr


def test_port_held_by_another_llmproxy_names_its_pid(tmp_path: Path) -> None:
    with serving(providers(), ROUTES) as running:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "serve", "--simulate", "--port", str(running.port)],
            cwd=REPO,
            env=subprocess_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"another llmproxy (pid {os.getpid()})" in lines[0]
    assert "llmproxy stop" in lines[0]


# --- 5. commands that only talk to the daemon need no provider key ---------------------------


def _keys_as_variables(config: str) -> str:
    """The README's systemd setup: keys in the unit's env file, not in this shell."""
    return config.replace('api_key = "sim-key"', 'api_key = "$ZAI_API_KEY"')


def test_client_commands_work_without_provider_keys_while_a_daemon_runs(cli: Cli) -> None:
    assert "ZAI_API_KEY" not in os.environ
    with serving(providers(), ROUTES) as running:
        config = str(cli.config(_keys_as_variables(running.config)))
        chat = cli("chat", "--config", config, "Hello")
        status = cli("status", "--config", config, "--json")
        listed = cli("providers", "status", "--config", config, "--json")
        routed = cli("route", "test", "auto", "--config", config)
    for result in (chat, status, listed, routed):
        assert result.exit_code == 0, result.output
        assert "is not set" not in result.output
    assert chat.stdout == reply_text("zai", "glm-5", "Hello") + "\n"
    assert orjson.loads(status.stdout)["answering"] is True
    keys = {r["name"]: r["key"] for r in orjson.loads(listed.stdout)["providers"]}
    assert keys == {"zai": "unset here", "cerebras": "unset here"}


def test_commands_that_need_a_key_say_which_and_why(cli: Cli) -> None:
    with serving(providers(), ROUTES, daemon=False) as running:
        config = str(cli.config(_keys_as_variables(running.config)))
        chat = cli("chat", "--config", config, "Hello")
        probe = cli("providers", "status", "--config", config, "--probe")
    assert chat.exit_code == 2
    message = " ".join(chat.stderr.split())
    assert "ZAI_API_KEY is not set" in message and "no daemon answers" in message
    assert probe.exit_code == 2 and "--probe calls the providers" in " ".join(probe.stderr.split())


# --- 6. the rest of what looked broken -----------------------------------------------------


def test_providers_status_knows_sign_ins_and_keyless_providers(cli: Cli, tmp_path: Path) -> None:
    codex = SimulatedProvider("openai-codex", "codex", ["gpt-5.2"])
    local = SimulatedProvider("ollama", "openai", ["qwen"])
    with serving([codex, local], {"default": "ollama,qwen"}, daemon=False) as running:
        store = seed_store(running.sims["openai-codex"], tmp_path / "codex.json")
        text = running.config.replace('api_key = "sim-key"\nmodels = ["qwen"]', 'models = ["qwen"]')
        text = text.replace('format = "codex"', f'format = "codex"\n{codex_keys(codex, store)}')
        rows = cli("providers", "status", "--config", str(cli.config(text)), "--json")
    assert rows.exit_code == 0, rows.output
    keys = {r["name"]: r["key"] for r in orjson.loads(rows.stdout)["providers"]}
    assert keys == {"openai-codex": "sign-in", "ollama": "none"}


def test_status_url_reports_that_daemon_only(cli: Cli, tmp_path: Path) -> None:
    # a detached daemon of our own on another port: its pid and log are not the asked one's
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve"])
    state = tmp_path / "state"
    state.mkdir()
    (state / "daemon.json").write_bytes(
        orjson.dumps(
            {
                "pid": other.pid,
                "url": f"http://127.0.0.1:{free_port()}",
                "log": "/x/llmproxy.log",
                "started": time.time(),
            }
        )
    )
    try:
        with serving(providers(), ROUTES) as running:
            report = orjson.loads(cli("status", "--url", running.url, "--json").stdout)
    finally:
        other.kill()
        other.wait()
    assert report["answering"] is True and report["pid"] == os.getpid()
    assert report["log"] is None and report["detached"] is False


@pytest.mark.parametrize("tokens", [2000, 20000])
def test_route_test_tokens_pads_to_about_n_tokens(cli: Cli, tokens: int) -> None:
    with serving(providers(), ROUTES, daemon=False) as running:
        result = cli(
            "route",
            "test",
            "auto",
            "--tokens",
            str(tokens),
            "--json",
            "--config",
            str(cli.config(running.config)),
        )
    estimate = orjson.loads(result.stdout)["token_estimate"]
    assert abs(estimate - tokens) <= tokens * 0.05, estimate


def test_chat_url_takes_the_sdk_base_url_and_a_bare_host(cli: Cli) -> None:
    with serving(providers(), ROUTES) as running:
        with_v1 = cli("chat", "--url", running.url + "/v1", "--api-key", CLIENT_KEY, "Hi")
        bare = cli("chat", "--url", f"localhost:{running.port}", "--api-key", CLIENT_KEY, "Hi")
    for result in (with_v1, bare):
        assert result.exit_code == 0, result.output
        assert result.stdout == reply_text("zai", "glm-5", "Hi") + "\n"


def test_daemon_down_says_what_to_do_in_plain_words(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("chat", "--url", url, "Hi")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"nothing answers at {url} (connection refused)" in message
    assert "llmproxy serve --detach" in message
    assert "aiohttp" not in message and "httpx" not in message and "Errno" not in message


def test_a_stream_cut_and_taken_over_shows_the_cut(cli: Cli) -> None:
    sims = [
        SimulatedProvider(
            "zai", "openai", ["glm-5"], plan=FaultPlan([CutAfter(2)]), chunk_chars=4, persona="same"
        ),
        SimulatedProvider("minimax", "anthropic", ["glm-5"], persona="same"),
    ]
    with serving(sims, {"default": "zai,glm-5|minimax,glm-5"}) as running:
        result = cli("chat", "--url", running.url, "--api-key", CLIENT_KEY, "--json", "Hello")
    data = orjson.loads(result.stdout)
    assert [(a["target"], a["outcome"]) for a in data["attempts"]] == [
        ("zai,glm-5", "stream_cut"),
        ("minimax,glm-5", "ok"),
    ]
    assert data["served_by"] == "minimax,glm-5"


def test_stop_stops_a_foreground_daemon_that_status_reports(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--simulate", "--port", str(port)],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while health(url) is None:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        status = orjson.loads(cli("status", "--url", url, "--json").stdout)
        assert status["running"] and status["pid"] == process.pid
        stopped = cli("stop", "--url", url)
        assert stopped.exit_code == 0, stopped.output
        assert f"stopped llmproxy (pid {process.pid}, running in the foreground)" in stopped.stderr
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()


# --- 7. smaller things --------------------------------------------------------------------


def test_help_shows_no_bool_types_and_knows_h_and_version(cli: Cli) -> None:
    helped = cli("chat", "-h")
    version = cli("--version")
    assert helped.exit_code == 0 and "--no-stream" in helped.stdout
    assert "<bool>" not in helped.stdout
    assert version.exit_code == 0 and re.fullmatch(r"llmproxy \S+\n", version.stdout)


def test_a_misspelt_alias_gets_a_did_you_mean(cli: Cli) -> None:
    with serving(providers(), ROUTES, mappings=[("fastest", "cerebras,llama-3.3-70b")]) as running:
        config = str(cli.config(running.config))
        chat = cli("chat", "--config", config, "-m", "fastets", "Hi")
        routed = cli("route", "test", "fastets", "--config", config)
    assert chat.exit_code == 0
    assert "did you mean 'fastest'?" in " ".join(chat.stderr.split())
    assert "did you mean 'fastest'?" in " ".join(routed.stderr.split())


def test_models_list_has_a_real_creation_time() -> None:
    import openai

    with serving(providers(), ROUTES) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=CLIENT_KEY)
        models = client.models.list().data
        client.close()
    assert models and all(abs(m.created - time.time()) < 3600 for m in models)


def test_auth_status_says_expires_in_minutes(cli: Cli, tmp_path: Path) -> None:
    sim = SimulatedProvider("openai-codex", "codex", ["gpt-5.2"])
    store = seed_store(sim, tmp_path / "codex.json", expires_in=3600)
    shown = cli("auth", "status", "--store", str(store))
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^expires in: (5\d|60) min$", shown.stdout, re.M), shown.stdout
    assert "seconds" not in shown.stdout
