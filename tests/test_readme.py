"""The README's commands and its configuration example are what the product really does."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from proxy.affinity import AffinitySettings
from proxy.config import load_config, parse_config
from proxy.types import Scenario

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(python3 -m venv .*?)\n```", README)
    test_command = next(c for c in commands if "[test]" in c)
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    section = README.split("## Configuration reference", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    (tmp_path / "taxonomy" / "routing_scenarios").mkdir(parents=True)
    env = {
        "LLMPROXY_API_KEY": "k",
        "ZAI_API_KEY": "z",
        "CEREBRAS_API_KEY": "c",
        "MINIMAX_API_KEY": "m",
    }
    path = tmp_path / "config.toml"
    path.write_text(example.group(1))
    config = load_config(path, env)
    assert config.router.route(Scenario.THINK) is not None
    assert config.router.route_options(Scenario.THINK).buffer
    assert [p.name for p in config.providers] == ["zai", "cerebras", "minimax", "openai-codex"]
    assert (config.journal.retention_days, config.journal.max_mb) == (30, 100)
    assert config.journal.flush_seconds == 0.2


def test_the_client_key_variable_is_the_one_the_cli_reads() -> None:
    """`init` writes `$LLMPROXY_API_KEY`, `chat --api-key` reads it: the README says the same."""
    from cli.init import STARTER_CONFIG

    assert "$LLMPROXY_API_KEY" in STARTER_CONFIG
    assert "$LLMPROXY_KEY" not in README and '"$LLMPROXY_API_KEY"' in README


def test_the_completion_install_lines_work_on_a_fresh_home(tmp_path: Path) -> None:
    block = re.search(r"```sh\n(mkdir -p [^\n]*completions.*?)```", README, re.S)
    assert block is not None
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(
        ["bash", "-euc", block.group(1)],
        cwd=repo,
        check=True,
        timeout=30,
        env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]},
    )
    assert (tmp_path / ".local/share/bash-completion/completions/llmproxy").is_file()
    assert (tmp_path / ".zfunc/_llmproxy").is_file()
    assert (tmp_path / ".config/fish/completions/llmproxy.fish").is_file()


def test_the_command_table_lists_every_command() -> None:
    from cli.main import COMMANDS

    table = README.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    for name in COMMANDS:
        assert f"`llmproxy {name}" in table, name


def test_the_configuration_example_states_the_affinity_defaults(tmp_path: Path) -> None:
    section = README.split("## Configuration reference", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    table = example.group(1).split("[affinity]", 1)[1].split("\n\n", 1)[0]
    text = (
        '[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\n'
        'api_base_url = "https://p.example/v1"\nmodels = ["m"]\n'
    )
    assert parse_config("[affinity]" + table + "\n" + text, {}).affinity == AffinitySettings()


async def test_the_affinity_benchmark_table_is_what_the_script_measures() -> None:
    """The README's numbers are the (deterministic, simulated-clock) bench's own output."""
    from bench.bench_affinity import run_conversation

    without = await run_conversation(False, turns=20, outage=8, spacing=120.0)
    with_ = await run_conversation(True, turns=20, outage=8, spacing=120.0)
    for run, label in ((without, "without affinity"), (with_, "with affinity")):
        row = (
            f"| {label} | {run.cached_share:.1%} | ${run.cost:.4f} | "
            f"{', '.join(map(str, run.cold_turns))} | {run.path} |"
        )
        assert row in README
    # The story the README tells: back to a cold zai at turn 10 without affinity...
    assert without.cold_turns == [1, 8, 10]
    assert without.turns[9].served_by == "zai,glm-5"
    # ...and, with it, every turn after the first on a target is warm.
    assert with_.cold_turns == [1, 8]
    assert all(t.served_by == "minimax,MiniMax-M2.5" for t in with_.turns[7:])
    saved = f"the conversation costs {1 - with_.cost / without.cost:.0%} less"
    assert saved in " ".join(README.split())
