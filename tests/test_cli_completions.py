"""Completions are generated from the app and checked in; every command explains itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from cli.completions import DEFAULT_DIR, main, render, walk
from cli.main import COMMANDS, all_commands, app

SHELLS = {
    "llmproxy.bash": ["bash", "-n"],
    "llmproxy.zsh": ["zsh", "-n"],
    "llmproxy.fish": ["fish", "--no-execute"],
}


def test_checked_in_completions_match_the_commands(tmp_path: Path) -> None:
    """When this fails, run `python -m cli.completions` and commit the result."""
    assert main([str(tmp_path)]) == 0
    for name in render(app):
        fresh = (tmp_path / name).read_text()
        assert (DEFAULT_DIR / name).read_text() == fresh, f"{name} is stale"
    assert main(["--check", str(DEFAULT_DIR)]) == 0


def test_check_reports_drift(tmp_path: Path) -> None:
    main([str(tmp_path)])
    (tmp_path / "llmproxy.fish").write_text("# old\n")
    assert main(["--check", str(tmp_path)]) == 1


def test_completions_know_every_command_and_option() -> None:
    scripts = render(app)
    for node in walk(app):
        for script in scripts.values():
            if node.path:
                assert node.path in script
        for option in node.options:
            assert all(name in scripts["llmproxy.bash"] for name in option.names)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                shutil.which(SHELLS[name][0]) is None,
                reason=f"{SHELLS[name][0]} is not installed (.ci/run installs it)",
            ),
        )
        for name in sorted(SHELLS)
    ],
)
def test_completion_scripts_parse(name: str) -> None:
    subprocess.run([*SHELLS[name], str(DEFAULT_DIR / name)], check=True, timeout=10)


def _complete(words: list[str]) -> list[str]:
    script = DEFAULT_DIR / "llmproxy.bash"
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        '_llmproxy; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_walks_the_command_tree() -> None:
    assert {"chat", "e2e", "serve", "providers", "route"} <= set(_complete(["llmproxy", ""]))
    assert _complete(["llmproxy", "route", ""]) == ["test"]
    assert "--simulate" in _complete(["llmproxy", "e2e", "--s"])
    assert "--probe" in _complete(["llmproxy", "providers", "status", "--"])
    # after an option that takes a value, no option names are offered
    assert _complete(["llmproxy", "chat", "--model", ""]) == []
    # a positional argument does not derail the command path
    assert "--send" in _complete(["llmproxy", "route", "test", "auto", "--se"])


def _leaf_paths() -> list[str]:
    return [node.path for node in walk(app) if node.path and not node.subcommands]


@pytest.mark.parametrize("path", _leaf_paths())
def test_every_command_has_help_with_examples(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Examples" in result.stdout, f"`llmproxy {path} --help` shows no examples"
    # typer would show annotations: `--url <str>`, `args... <list[str]>`, `--verbose <bool>`
    python_types = re.findall(r"<(?:str|int|float|bool|list\[[^>]*\])>", result.stdout)
    assert not python_types, f"`llmproxy {path} --help` shows {python_types}"


def test_the_app_has_the_documented_commands() -> None:
    group = typer.main.get_command(app)
    assert {
        "serve",
        "chat",
        "e2e",
        "init",
        "status",
        "stop",
        "reload",
        "route",
        "providers",
        "code",
        "codex",
    } <= set(group.list_commands(None))  # type: ignore[attr-defined]


def test_help_lists_each_command_with_its_own_first_help_line() -> None:
    """The top-level help is drawn from a table (so it imports no command); it must say what
    each command's own help says."""
    for name, command in all_commands().items():
        own = " ".join((command.help or "").split("\n\n")[0].split()).rstrip(".")
        assert COMMANDS[name].summary == own, name


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_value_completion_offers_choices_never_file_names() -> None:
    assert _complete(["llmproxy", "serve", "--log-level", ""]) == [
        "debug",
        "info",
        "warning",
        "error",
    ]
    assert _complete(["llmproxy", "serve", "--log-level", "w"]) == ["warning"]
    # `complete -o default` would fall back to file names for an empty answer: the value
    # branch turns that off for this completion
    script = (DEFAULT_DIR / "llmproxy.bash").read_text()
    value_branch = script.split('if [[ " $values " == *" $prev "* ]]; then', 1)[1]
    assert value_branch.lstrip().startswith("compopt +o default")
