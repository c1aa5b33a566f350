"""`llmproxy route test` on the console script's quick path (`cli._route_argv`, no Typer) reads
its arguments as the Typer command (`cli.route`) does, and hands it everything else, so that
the two cannot drift: the same options, the same values from the same argv, the same output,
errors and exit codes from a real process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cli_support import serving, subprocess_env, typer_reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli._route_argv import ENVVARS, FILE, FLAG, NUMBER, OPTIONS, TEXT, TURNS, parse_route_test
from cli._route_test import RouteTestArgs
from cli.app import load_command
from proxy.frozen import fields
from proxy.simulate import SimulatedProvider

REPO = Path(__file__).resolve().parent.parent
COMMAND = load_command("route").commands["test"]
KEY = "client-key-from-env"


def _typer_reads(argv: Sequence[str]) -> RouteTestArgs | None:
    return typer_reads(COMMAND, "test", argv, RouteTestArgs)


def test_the_quick_parser_knows_exactly_the_typer_commands_options() -> None:
    options = [p for p in COMMAND.params if p.param_type_name == "option"]
    (argument,) = [p for p in COMMAND.params if p.param_type_name == "argument"]
    assert argument.name == "model" and argument.required
    names = {name: p for p in options for name in (*p.opts, *p.secondary_opts)}
    assert set(OPTIONS) == set(names)
    defaults = {f.name: f.default for f in fields(RouteTestArgs) if f.name != "model"}
    for name, (field, kind) in OPTIONS.items():
        param = names[name]
        assert param.name == field
        assert defaults[field] == param.default, name
        expected = {
            "BoolParamType": FLAG,
            "IntParamType": NUMBER,
            "IntRange": TURNS,
            "TyperPath": FILE,
            "StringParamType": TEXT,
        }[type(param.type).__name__]
        assert kind == expected, name
        assert param.is_flag == (kind == FLAG) and not param.multiple
        if kind == TURNS:
            assert (param.type.min, param.type.max) == (1, 50)
            assert not (param.type.min_open or param.type.max_open or param.type.clamp)
        if kind == FILE:  # a file that need not exist, but must be readable if it does
            assert (param.type.exists, param.type.dir_okay, param.type.readable) == (
                False,
                False,
                True,
            )
    assert {p.name: p.envvar for p in options if p.envvar} == ENVVARS
    assert set(defaults) == {p.name for p in options}


TOKENS = st.sampled_from(
    [
        "auto",
        "thinking",
        "zai,glm-5",
        "-",
        "--",
        "--prompt",
        "--prompt=hi there",
        "--prompt=",
        "Hello, world",
        "--thinking",
        "--thinking=1",
        "--tools",
        "--image",
        "--tokens",
        "--tokens=80000",
        "80000",
        "-5",
        "x",
        "1_000",
        "--json",
        "--send",
        "--stream",
        "--url",
        "http://127.0.0.1:3456",
        "--api-key",
        "--api-key=k",
        "--session",
        "--turns",
        "--turns=3",
        "0",
        "51",
        "3",
        "-c",
        "--config",
        f"--config={REPO / 'pyproject.toml'}",
        str(REPO / "pyproject.toml"),
        str(REPO / "tests"),
        "/nonexistent/config.toml",
        "-cfile.toml",
        "--nosuch",
        "-h",
        "--help",
        "--con",
    ]
)


@pytest.mark.parametrize("env", [{}, {"LLMPROXY_API_KEY": KEY}, {"LLMPROXY_API_KEY": ""}])
# monkeypatch is used through a fresh `context()` per example
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.lists(TOKENS, max_size=7))
def test_what_the_quick_parser_accepts_typer_reads_the_same_way(
    env: dict[str, str], argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the quick parser gives up, the Typer command reads the arguments (and answers
    `--help` or a usage error itself); where it does not, both read the same values."""
    with monkeypatch.context() as patched:
        patched.delenv("LLMPROXY_API_KEY", raising=False)
        for name, value in env.items():
            patched.setenv(name, value)
        typer_args = _typer_reads(argv)
    quick = parse_route_test(argv, env)
    if quick is not None:
        assert quick == typer_args, argv


DOCUMENTED = [
    ["claude-haiku-4-5"],
    ["thinking", "--tools"],
    ["auto", "--tokens", "80000", "--json"],
    ["claude-sonnet-4-5", "--thinking", "--send"],
    ["auto", "--send", "--url", "http://127.0.0.1:3456"],
    ["auto", "--send", "--turns", "3", "--session", "demo"],
    ["auto", "--prompt", "hi", "--image", "--stream", "--api-key", "k", "-c", "x.toml"],
    ["--json", "auto", "--config=x.toml", "--tokens=5"],
    ["--", "-odd-model-name"],
]


@pytest.mark.parametrize("argv", DOCUMENTED)
def test_every_documented_form_takes_the_quick_path(argv: list[str]) -> None:
    quick = parse_route_test(argv, {})
    assert quick is not None
    assert quick == _typer_reads(argv)


def _run(path: str, args: Sequence[str], home: Path, **env: str) -> tuple[int, str, str]:
    """`llmproxy route test ARGS` in a fresh process: `quick` through the console script's
    entry point (`cli.main.run`), `typer` straight into the Typer app."""
    entry = {
        "quick": "from cli.main import run; run()",
        "typer": "from cli.app import app; app()",
    }[path]
    script = f"import sys; sys.argv[0] = 'llmproxy'; {entry}"
    done = subprocess.run(
        [sys.executable, "-c", script, "route", "test", *args],
        cwd=REPO,
        env=subprocess_env(home, COLUMNS="100", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


CONFIG = (
    '[router]\ndefault = "zai,glm-5|cerebras,llama-3.3-70b"\nthink = "cerebras,llama-3.3-70b"\n'
    '[[providers]]\nname = "zai"\napi_base_url = "https://api.z.ai/api/paas/v4"\n'
    'api_key = "$ZAI_KEY"\nmodels = ["glm-5"]\n'
    '[[providers]]\nname = "cerebras"\napi_base_url = "https://api.cerebras.ai/v1"\n'
    'api_key = "$CEREBRAS_KEY"\nmodels = ["llama-3.3-70b"]\n'
)


def _cases(tmp_path: Path) -> list[list[str]]:
    good = tmp_path / "config.toml"
    good.write_text(CONFIG)
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.replace('think = "cerebras', 'think = "nosuch'))
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[router\n")
    c = ["--config", str(good)]
    return [
        ["auto", *c],
        ["auto", "--tokens", "80000", "--json", *c],
        ["thinking", "--tools", "--thinking", "--image", "--prompt", "Think [router] hard", *c],
        ["zai,glm-5", "--session", "demo", "-c", str(good)],
        ["cerebras,nosuch", *c],  # an unknown model: the command's own error
        ["fastets", *c],  # a typo'd alias: a warning on stderr
        ["auto", "--config", str(broken)],  # a config error naming the key
        ["auto", "--config", str(bad_toml)],
        ["auto", "--config", str(tmp_path / "missing.toml")],
        ["auto"],  # no config anywhere
        ["auto", "--turns", "0", *c],  # usage errors, help: Typer's own
        ["auto", "--nosuch", *c],
        ["--help"],
        [],
    ]


def test_route_test_through_the_console_script_prints_what_the_typer_command_prints(
    tmp_path: Path,
) -> None:
    for args in _cases(tmp_path):
        quick = _run("quick", args, tmp_path)
        assert quick == _run("typer", args, tmp_path), args
        assert "Traceback" not in quick[2]


def test_the_client_key_comes_from_the_environment_on_both_paths(tmp_path: Path) -> None:
    """`--api-key` falls back to `$LLMPROXY_API_KEY`: an explicit `--url` that refuses the
    key shows the same attempt on both paths."""
    with serving(
        [SimulatedProvider("zai", "openai", ["glm-5"])], {"default": "zai,glm-5"}
    ) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        args = ["auto", "--send", "--url", running.url, "--json", "--config", str(config)]
        outcomes: list[Any] = []
        for key in ("wrong", ""):
            for path in ("quick", "typer"):
                code, out, err = _run(path, args, tmp_path, LLMPROXY_API_KEY=key)
                outcomes.append((key, path, code, '"status": 401' in out, err))
    (wrong_quick, wrong_typer, none_quick, none_typer) = outcomes
    assert wrong_quick[2:] == wrong_typer[2:]
    assert none_quick[2:] == none_typer[2:]
    assert wrong_quick[2] == 1 and wrong_quick[3]  # the daemon refused the wrong key


def test_send_on_the_quick_path_performs_the_request(tmp_path: Path) -> None:
    with serving(
        [SimulatedProvider("zai", "openai", ["glm-5"])], {"default": "zai,glm-5"}, daemon=False
    ) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        code, out, err = _run("quick", ["auto", "--send", "--config", str(config)], tmp_path)
    assert code == 0, err
    assert "answered by zai,glm-5" in out
