"""The README's commands and its configuration example are what the product really does."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.config import load_config
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
    env = {"LLMPROXY_KEY": "k", "ZAI_API_KEY": "z", "CEREBRAS_API_KEY": "c", "MINIMAX_API_KEY": "m"}
    path = tmp_path / "config.toml"
    path.write_text(example.group(1))
    config = load_config(path, env)
    assert config.router.route(Scenario.THINK) is not None
    assert config.router.route_options(Scenario.THINK).buffer
    assert [p.name for p in config.providers] == ["zai", "cerebras", "minimax", "openai-codex"]
    assert (config.journal.retention_days, config.journal.max_mb) == (30, 100)
