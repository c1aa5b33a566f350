"""Helpers for tests with a simulated ChatGPT backend: a seeded token store and the provider keys
that point a codex provider at the simulator's backend and token endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from proxy.codex_auth import TokenStore, parse_codex_auth
from proxy.simulate import SimulatedProvider


def seed_store(
    sim: SimulatedProvider,
    path: Path,
    *,
    shape: Literal["nested", "flat"] = "nested",
    expires_in: float | None = None,
) -> Path:
    """llmproxy's token store holding a fresh sign-in to `sim`'s account."""
    tokens = parse_codex_auth(sim.account.codex_auth_json(shape=shape, expires_in=expires_in))
    TokenStore(path).save(tokens)
    return path


def codex_keys(sim: SimulatedProvider, store: Path) -> str:
    """The codex-only provider keys for `sim` (TOML lines for `config_text(provider_extra=)`)."""
    return f'auth_file = "{store}"\ntoken_endpoint = "{sim.token_endpoint}"'
