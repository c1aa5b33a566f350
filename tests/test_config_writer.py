"""Config writes: tomlkit on the original text, `$VAR` references and comments kept, atomic,
mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from proxy.config import parse_config
from proxy.config_writer import (
    REDACTED,
    parse_document,
    remove_provider,
    render,
    set_router,
    upsert_provider,
    write_atomic,
)
from proxy.errors import ConfigError
from proxy.types import Scenario, Target

ORIGINAL = """# my llmproxy
[proxy]
api_key = "$PROXY_KEY"  # client key

[router]
default = "zai,glm-5"  # main
[[router.model_mappings]]
from = "fast"   # alias
to = "zai,glm-5"

[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
api_key = "${ZAI_API_KEY}"  # from env
models = ["glm-5"]
[providers.headers]
X-Team = "$TEAM_TOKEN"   # header secret
"""
ENV = {"PROXY_KEY": "p-key-123456", "ZAI_API_KEY": "z-key-123456", "TEAM_TOKEN": "t-123456"}


def test_router_edit_keeps_everything_else() -> None:
    document = parse_document(ORIGINAL)
    set_router(
        document,
        {
            "think": "zai,glm-5",
            "background": None,
            "model_mappings": [
                {"from": "fast", "to": "zai,glm-5"},
                {"from": "cheap", "to": "zai,glm-5"},
            ],
        },
    )
    text = render(document)
    config = parse_config(text, ENV)
    assert [m.pattern for m in config.router.model_mappings] == ["fast", "cheap"]
    assert config.router.route(Scenario.THINK) == (Target("zai", "glm-5"),)
    assert 'default = "zai,glm-5"  # main' in text
    assert text.index('think = "zai,glm-5"') < text.index("[[router.model_mappings]]")
    assert text.startswith('# my llmproxy\n[proxy]\napi_key = "$PROXY_KEY"  # client key')
    assert 'api_key = "${ZAI_API_KEY}"  # from env' in text


def test_provider_merge_keeps_secrets_and_subtables() -> None:
    document = parse_document(ORIGINAL)
    created = upsert_provider(
        document,
        "zai",
        {
            "api_key": REDACTED,
            "headers": {"X-Team": REDACTED, "X-New": "v"},
            "prefill": False,
            "models": ["glm-5", "glm-4.7"],
        },
    )
    assert created is False
    text = render(document)
    assert 'api_key = "${ZAI_API_KEY}"  # from env' in text
    assert 'X-Team = "$TEAM_TOKEN"   # header secret' in text
    provider = parse_config(text, ENV).providers[0]
    assert provider.api_key == "z-key-123456"
    assert dict(provider.headers) == {"X-Team": "t-123456", "X-New": "v"}
    assert provider.models == ("glm-5", "glm-4.7")
    assert provider.prefill is False


def test_new_and_removed_providers() -> None:
    document = parse_document(ORIGINAL)
    assert upsert_provider(
        document,
        "local",
        {
            "api_base_url": "http://127.0.0.1:11434/v1",
            "models": ["*"],
            "allow_private_network": True,
            "timeouts": {"connect_ms": 500},
        },
    )
    config = parse_config(render(document), ENV)
    assert [p.name for p in config.providers] == ["zai", "local"]
    assert config.providers[1].timeouts.connect == 0.5
    remove_provider(document, "local")
    assert render(document) == ORIGINAL
    with pytest.raises(ConfigError):
        remove_provider(document, "local")
    with pytest.raises(ConfigError):
        upsert_provider(document, "a", {"models": [None]})


def test_write_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    write_atomic(path, ORIGINAL)
    assert path.read_text() == ORIGINAL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "bad \udc80 surrogate")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_new_keys_and_tables_go_where_a_reader_expects_them() -> None:
    """The starter config as `llmproxy init` writes it: a new router key joins the router's
    keys (not the comment that introduces the next table), a new provider gets a blank line
    before its header, and flat `headers` stay on their provider's lines."""
    from cli.init import STARTER_CONFIG

    document = parse_document(STARTER_CONFIG)
    set_router(document, {"think": "zai,glm-5"})
    upsert_provider(
        document,
        "minimax",
        {"api_base_url": "https://api.minimax.io/anthropic", "models": ["MiniMax-M2.5"]},
    )
    upsert_provider(document, "zai", {"headers": {"X-Title": "llmproxy"}})
    text = render(document)
    lines = text.splitlines()
    default = lines.index('default = "zai,glm-5|cerebras,llama-3.3-70b"')
    assert lines[default + 1] == 'think = "zai,glm-5"'
    header = len(lines) - 1 - lines[::-1].index("[[providers]]")
    assert lines[header - 1] == "" and lines[header + 1] == 'name = "minimax"'
    assert 'headers = {X-Title = "llmproxy"}' in lines
    assert "[providers.headers]" not in text
    parse_config(text, {"ZAI_API_KEY": "z", "CEREBRAS_API_KEY": "c"})
