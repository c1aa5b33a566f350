"""`llmproxy serve` on the console script's quick path (`cli._serve_argv`, no Typer) reads its
arguments as the Typer command (`cli.serve`) does, and hands it everything else, so that the two
cannot drift: the same options, the same values from the same argv, the same output, errors and
exit codes from a real process. And a daemon started the way every script, worker and
`--detach` starts it (`python -m cli serve ...`) never imports Typer, click or rich."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from cli_support import imported_by_serving, subprocess_env, typer_reads
from hypothesis import given, settings
from hypothesis import strategies as st

from cli._argv import FILE, FLAG, NUMBER, TEXT
from cli._serve import ServeArgs
from cli._serve_argv import OPTIONS, WORKERS, parse_serve
from cli.app import load_command
from proxy.frozen import fields

REPO = Path(__file__).resolve().parent.parent
COMMAND = load_command("serve")


def _typer_reads(argv: Sequence[str]) -> ServeArgs | None:
    return typer_reads(COMMAND, "serve", argv, ServeArgs)


def test_the_quick_parser_knows_exactly_the_typer_commands_options() -> None:
    options = [p for p in COMMAND.params if p.param_type_name == "option"]
    assert len(options) == len(COMMAND.params)  # no arguments
    names = {name: p for p in options for name in (*p.opts, *p.secondary_opts)}
    assert set(OPTIONS) == set(names)
    defaults = {f.name: f.default for f in fields(ServeArgs)}
    assert set(defaults) == {p.name for p in options}
    for name, (field, kind) in OPTIONS.items():
        param = names[name]
        assert param.name == field
        assert defaults[field] == param.default, name
        assert not param.multiple and param.envvar is None, name
        assert param.is_flag == (kind == FLAG), name
        typed = type(param.type).__name__
        if typed == "TyperChoice":
            assert kind == tuple(param.type.choices) and param.type.case_sensitive, name
        elif typed == "IntRange":
            assert kind == WORKERS, name
            assert (param.type.min, param.type.max) == (WORKERS[0], WORKERS[-1])
            assert not (param.type.min_open or param.type.max_open or param.type.clamp)
        else:
            expected = {
                "BoolParamType": FLAG,
                "IntParamType": NUMBER,
                "TyperPath": FILE,
                "StringParamType": TEXT,
            }[typed]
            assert kind == expected, name
        if kind == FILE:  # a file that need not exist, but must be readable if it does
            assert (param.type.exists, param.type.dir_okay, param.type.readable) == (
                False,
                False,
                True,
            )


TOKENS = st.sampled_from(
    [
        "--config",
        "-c",
        f"--config={REPO / 'pyproject.toml'}",
        str(REPO / "pyproject.toml"),
        str(REPO / "tests"),
        "/nonexistent/config.toml",
        "-cfile.toml",
        "--host",
        "--host=0.0.0.0",
        "127.0.0.1",
        "--port",
        "-p",
        "--port=8080",
        "-p8080",
        "8080",
        "-5",
        "x",
        "1_000",
        "--log-level",
        "--log-level=warning",
        "debug",
        "INFO",
        "info ",
        "--log-format",
        "--log-format=json",
        "text",
        "--simulate",
        "--simulate=1",
        "--seed",
        "--seed=7",
        "--detach",
        "-d",
        "-dw",
        "--workers",
        "-w",
        "--workers=4",
        "0",
        "64",
        "65",
        "--watch",
        "--",
        "-",
        "--nosuch",
        "-h",
        "--help",
        "--port=",
    ]
)


@settings(max_examples=600, deadline=None)
@given(argv=st.lists(TOKENS, max_size=7))
def test_what_the_quick_parser_accepts_typer_reads_the_same_way(argv: list[str]) -> None:
    """Where the quick parser gives up, the Typer command reads the arguments (and answers
    `--help` or a usage error itself); where it does not, both read the same values."""
    quick = parse_serve(argv)
    if quick is not None:
        assert quick == _typer_reads(argv), argv


DOCUMENTED = [
    [],
    ["--config", "~/.config/llmproxy/config.toml"],
    ["--simulate"],
    ["--simulate", "--seed", "7", "--port", "3457"],
    ["--detach"],
    ["--workers", "4"],
    ["--watch"],
    ["--config", "c.toml", "--port", "8123", "--log-level", "warning"],  # the bench scripts'
    ["--host", "0.0.0.0", "-p", "8080", "--log-format", "json", "-w", "2", "-d"],
]


@pytest.mark.parametrize("argv", DOCUMENTED)
def test_every_documented_form_takes_the_quick_path(argv: list[str]) -> None:
    quick = parse_serve(argv)
    assert quick is not None
    assert quick == _typer_reads(argv)


def _run(path: str, args: Sequence[str], home: Path) -> tuple[int, str, str]:
    """`llmproxy serve ARGS` in a fresh process that ends by itself: `quick` through the
    console script's entry point (`cli.main.run`), `typer` straight into the Typer app."""
    entry = {
        "quick": "from cli.main import run; run()",
        "typer": "from cli.app import app; app()",
    }[path]
    script = f"import sys; sys.argv[0] = 'llmproxy'; {entry}"
    done = subprocess.run(
        [sys.executable, "-c", script, "serve", *args],
        cwd=REPO,
        env=subprocess_env(home, COLUMNS="100"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


CONFIG = (
    '[router]\ndefault = "zai,glm-5"\n[[providers]]\nname = "zai"\n'
    'api_base_url = "https://api.z.ai/api/paas/v4"\napi_key = "k"\nmodels = ["glm-5"]\n'
)


def test_serve_through_the_console_script_ends_as_the_typer_command_ends(
    tmp_path: Path,
) -> None:
    """Config errors, a refused bind address, a port in use, usage errors and help: the same
    output and exit status on both paths (help and usage errors are Typer's own on both)."""
    good = tmp_path / "config.toml"
    good.write_text(CONFIG)
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.replace('default = "zai', 'default = "nosuch'))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        cases = [
            ["--config", str(broken), "--port", busy],
            ["--config", str(tmp_path / "missing.toml"), "--port", busy],
            ["--port", busy],  # no config anywhere
            ["--config", str(good), "--host", "0.0.0.0", "--port", busy],  # no client key
            ["--config", str(good), "--port", busy],
            ["--simulate", "--workers", "2", "--port", busy],
            ["--config", str(good), "--workers", "0"],
            ["--log-level", "loud"],
            ["--nosuch"],
            ["--help"],
        ]
        for args in cases:
            quick = _run("quick", args, tmp_path)
            assert quick == _run("typer", args, tmp_path), args
            assert quick[0] != 0 or args == ["--help"], args
            assert "Traceback" not in quick[2], args


@pytest.mark.parametrize("switch", [None, ""])
def test_a_serving_daemon_never_imported_typer_click_rich_or_cpp(
    tmp_path: Path, switch: str | None
) -> None:
    """README, "Daemon RSS": the daemon, started as the bench scripts, `--workers` and
    `--detach` start it, serves without Typer, its vendored click, click or rich, and with
    frozenlist in pure Python, not its C++ extension, unless the environment sets frozenlist's
    switch (`python -X importtime` lists every module a process imported; the daemon is stopped
    once it listens)."""
    env = subprocess_env(tmp_path)
    env.pop("FROZENLIST_NO_EXTENSIONS", None)
    if switch is not None:  # "": frozenlist compiled
        env["FROZENLIST_NO_EXTENSIONS"] = switch
    imported = imported_by_serving(tmp_path, CONFIG, env)
    assert "proxy.server" in imported and "aiohttp.web" in imported
    assert [m for m in imported if m.split(".")[0] in ("typer", "click", "rich")] == []
    assert "frozenlist" in imported
    assert ("frozenlist._frozenlist" in imported) == (switch is not None)


def test_serving_in_process_leaves_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program (or a test) that runs `serve` in-process has aiohttp loaded already: the
    frozenlist switch would change nothing in it and would leak into every process it starts."""
    import aiohttp.web  # as a program serving in-process has it

    from cli._serve import _lean_imports

    monkeypatch.delenv("FROZENLIST_NO_EXTENSIONS", raising=False)
    assert aiohttp.web.Application is not None
    _lean_imports()
    assert "FROZENLIST_NO_EXTENSIONS" not in os.environ
