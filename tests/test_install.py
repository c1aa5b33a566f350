"""`cli` and `proxy` are generic import names (the `proxy.py` package also installs a `proxy`):
these must resolve to this repository, not to another distribution."""

from __future__ import annotations

from pathlib import Path

import cli
import proxy

REPO = Path(__file__).resolve().parent.parent


def test_proxy_package_is_this_repository() -> None:
    assert Path(proxy.__file__).resolve().parent == REPO / "proxy"


def test_cli_package_is_this_repository() -> None:
    assert Path(cli.__file__).resolve().parent == REPO / "cli"


def test_console_script_entry_point_targets_this_cli() -> None:
    from importlib.metadata import entry_points

    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "llmproxy"]
    assert script.value == "cli.main:run"
    assert script.load().__module__ == "cli.main"
