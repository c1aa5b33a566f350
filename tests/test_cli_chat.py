"""`llmproxy chat`: one-shot, piped and interactive (through a pseudo terminal), against the real
daemon and in-process, over simulated providers."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pexpect  # the pseudo-terminal tests
import pytest
from cli_support import Cli, default_address_unused, serving, subprocess_env
from support import CLIENT_KEY

from proxy.simulate import (
    REFUSE_TRIGGER,
    FaultPlan,
    SimulatedProvider,
    Status,
    reasoning_text,
    refusal_text,
    reply_text,
)

ROUTES = {"default": "zai,glm-5|cerebras,llama-3.3-70b"}
REPO = Path(__file__).resolve().parent.parent


def providers(
    zai_plan: FaultPlan | None = None, chunk_delay: float = 0.0
) -> list[SimulatedProvider]:
    return [
        SimulatedProvider(
            "zai", "openai", ["glm-5"], reasoning=True, plan=zai_plan, chunk_delay=chunk_delay
        ),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_one_shot_through_the_daemon_prints_the_answer_and_a_footer(cli: Cli) -> None:
    with serving(providers(), ROUTES) as running:
        result = cli("chat", "--config", str(cli.config(running.config)), "Hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout == reply_text("zai", "glm-5", "Hello there") + "\n"
    # reasoning stays apart from the answer: on stderr, before the footer
    assert reasoning_text("zai", "glm-5", "Hello there") in result.stderr
    footer = result.stderr.strip().splitlines()[-1]
    assert footer.startswith("zai,glm-5 · ") and f"daemon {running.url}" in footer
    assert " out tokens · " in footer


def test_piped_stdin_and_fallback_hops_in_the_footer(cli: Cli) -> None:
    with serving(providers(FaultPlan.always(Status(503))), ROUTES) as running:
        result = cli(
            "chat",
            "--config",
            str(cli.config(running.config)),
            "--no-stream",
            input="Summarise this\n",
        )
    assert result.exit_code == 0, result.output
    assert result.stdout == reply_text("cerebras", "llama-3.3-70b", "Summarise this") + "\n"
    assert "cerebras,llama-3.3-70b · 2 hops: zai 503 → zai 503 → cerebras" in result.stderr


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_a_refusal_is_printed_as_the_answer(cli: Cli, stream: bool) -> None:
    """A chat `refusal` (content null) is what the model said: the CLI prints it, streamed or
    whole."""
    flags = [] if stream else ["--no-stream"]
    with serving(providers(), ROUTES) as running:
        config = str(cli.config(running.config))
        result = cli("chat", "--config", config, *flags, REFUSE_TRIGGER + " the plan")
    assert result.exit_code == 0, result.output
    assert result.stdout == refusal_text("zai", "glm-5") + "\n"


def test_json_output_says_who_served_and_how(cli: Cli) -> None:
    with serving(providers(), ROUTES) as running:
        result = cli("chat", "--url", running.url, "--api-key", CLIENT_KEY, "--json", "Hi")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["text"] == reply_text("zai", "glm-5", "Hi")
    assert data["reasoning"] == reasoning_text("zai", "glm-5", "Hi")
    assert data["served_by"] == "zai,glm-5" and data["stop"] == "end_turn"
    assert data["usage"]["output_tokens"] > 0 and data["via"] == f"daemon {running.url}"
    # the daemon's attempts header carries no timing: no `"elapsed_ms": null` stands in for it
    assert data["attempts"] == [
        {"target": "zai,glm-5", "outcome": "ok", "error_class": None, "detail": ""}
    ]


def test_runs_in_process_when_no_daemon_answers(cli: Cli) -> None:
    with serving(providers(FaultPlan([Status(500), Status(500)])), ROUTES, daemon=False) as running:
        result = cli("chat", "--config", str(cli.config(running.config)), "--json", "Hi")
        forced = cli("chat", "--config", str(cli.config(running.config)), "--in-process", "Yo")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["via"] == "in-process" and data["served_by"] == "cerebras,llama-3.3-70b"
    # in-process attempts carry their timing and error class
    first = data["attempts"][0]
    assert first["target"] == "zai,glm-5" and first["outcome"] == "500"
    assert first["error_class"] == "server_error" and first["elapsed_ms"] >= 0
    assert forced.exit_code == 0 and forced.stdout == reply_text("zai", "glm-5", "Yo") + "\n"


def test_a_failed_request_lists_its_attempts_and_exits_1(cli: Cli) -> None:
    with serving(providers(FaultPlan.always(Status(401))), {"default": "zai,glm-5"}) as running:
        result = cli("chat", "--config", str(cli.config(running.config)), "Hi")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error:" in result.stderr and "zai,glm-5  401  auth_error" in result.stderr


def test_without_config_or_daemon_it_points_at_init_and_simulate(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = default_address_unused(monkeypatch)
    result = cli("chat", "Hi")
    assert result.exit_code == 2
    assert f"no daemon at {nowhere}" in result.stderr
    assert "llmproxy init" in result.stderr and "serve --simulate" in result.stderr


def _wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _spawn(url: str, home: Path, *args: str) -> Any:
    env = subprocess_env(home, TERM="xterm", COLUMNS="120", LINES="40", LLMPROXY_API_KEY=CLIENT_KEY)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli", "chat", "--url", url, *args],
        cwd=str(REPO),
        env=env,
        encoding="utf-8",
        timeout=15,
        dimensions=(40, 120),
    )
    child.expect("/help for commands")
    child.expect("> ")
    return child


def test_interactive_session_keeps_history_and_takes_multiline_input(tmp_path: Path) -> None:
    with serving(providers(), ROUTES) as running:
        child = _spawn(running.url, tmp_path)
        child.sendline("Hello there")
        child.expect(r"You said: Hello there")
        child.expect(r"zai,glm-5 · ")  # the footer
        child.expect("> ")
        child.sendline("first line\\")
        child.sendline("second line")
        child.expect(r"You said: first line second line")
        child.expect("> ")
        child.sendline("/model cerebras,llama-3.3-70b")
        child.expect("model: cerebras,llama-3.3-70b")
        child.sendline("Again")
        child.expect(r"llama-3.3-70b\] You said: Again")
        child.expect("> ")
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        zai = running.sims["zai"]
        # the conversation went along: the second question carried the first exchange
        assert [m["role"] for m in zai.requests[1].body["messages"]] == [
            "user",
            "assistant",
            "user",
        ]
    assert child.exitstatus == 0
    assert "Hello there" in (tmp_path / "state" / "chat_history").read_text()


def test_ctrl_c_stops_the_answer_not_the_session(tmp_path: Path) -> None:
    with serving(providers(chunk_delay=0.3), ROUTES) as running:
        child = _spawn(running.url, tmp_path)
        child.sendline("Tell me a long story")
        child.expect("Thinking")  # the answer has started streaming
        child.sendintr()
        child.expect("interrupted")
        child.expect("> ")
        zai = running.sims["zai"]
        _wait_until(lambda: len(zai.requests) == 1)
        # the daemon let go of the upstream as soon as the client stopped listening
        assert zai.requests[0].outcome == "client_disconnected"
        zai.chunk_delay = 0.0
        child.sendline("/reset")
        child.expect("conversation cleared")
        child.sendline("Still there?")
        child.expect("You said: Still there")
        child.expect("> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0


def _answer_once(reply: bytes) -> tuple[str, threading.Thread]:
    """A server on a free port that reads one request, writes `reply` and hangs up: what a
    daemon that dies mid-answer, or something that is not HTTP, looks like to a client."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with server, server.accept()[0] as conn:
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", thread


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n"
            b'{"id": "cut',
            "broke off the answer (11 bytes read, 489 more expected)",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n40\r\ndata: {",
            "broke off the answer (0 bytes read)",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "gave no HTTP answer (it began 'SSH-2.0-OpenSSH_9.2')"),
    ],
)
def test_an_answer_cut_short_or_not_http_is_one_line_not_a_traceback(
    cli: Cli, reply: bytes, said: str
) -> None:
    url, thread = _answer_once(reply)
    stream = "transfer-encoding" in reply.decode()
    result = cli("chat", "--url", url, "Hello", *([] if stream else ["--no-stream"]))
    thread.join(5)
    assert result.exit_code == 1, result.output
    assert f"error: the daemon at {url} {said}" in result.output
    assert "Traceback" not in result.output
