"""`llmproxy init`: write a commented starter config."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import platformdirs
import typer

from cli._output import fail, stderr, stdout

STARTER_CONFIG = """\
# llmproxy config. Reference: README.md; check it with `llmproxy route test auto`.
# Values may use $NAME or ${NAME} for environment variables (a missing one is an error);
# $$ is a literal '$'.

[proxy]
host = "127.0.0.1"        # loopback only; use 0.0.0.0 to serve your network (set api_key then)
port = 3456
# api_key = "$LLMPROXY_API_KEY"   # clients send it as x-api-key or Authorization: Bearer
# timeout_ms = 600000             # deadline for a whole request, across every fallback

[router]
# A chain is "provider,model|provider,model|...": tried in order until one answers.
# Scalar keys must come before any [[router.model_mappings]] table (TOML puts later keys
# inside the last table).
default = "zai,glm-5|cerebras,llama-3.3-70b"
# think = "zai,glm-5|minimax,MiniMax-M2.5"    # requests that ask for reasoning
# background = "cerebras,llama3.1-8b"         # small-model requests (Claude Code's haiku)
# long_context = "zai,glm-5"                  # prompts over long_context_threshold tokens
# long_context_threshold = 60000
# background_model_pattern = "*haiku*"

# A client asking for model "fastest" gets this chain first, then the default one.
[[router.model_mappings]]
from = "fastest"
to = "cerebras,llama-3.3-70b"

# format is "openai" (chat completions) or "anthropic" (messages); it defaults from the name
# (minimax, kimi, anthropic -> anthropic; openai-codex -> codex; anything else -> openai).
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"   # coding plan: .../api/coding/paas/v4
api_key = "$ZAI_API_KEY"
models = ["glm-5", "glm-4.7"]

[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
api_key = "$CEREBRAS_API_KEY"
models = ["llama-3.3-70b", "llama3.1-8b"]

# [[providers]]
# name = "minimax"
# api_base_url = "https://api.minimax.io/anthropic"
# api_key = "$MINIMAX_API_KEY"
# models = ["MiniMax-M2.5"]

# [[providers]]
# name = "ollama"                                  # any OpenAI-compatible server
# api_base_url = "http://127.0.0.1:11434/v1"
# api_key = "ollama"
# models = ["*"]                                   # globs: serve whatever is asked for
# allow_private_network = true
"""


def default_path() -> Path:
    return platformdirs.user_config_path("llmproxy") / "config.toml"


PATH_OPTION = typer.Option(
    None,
    "--path",
    dir_okay=False,
    help="Where to write (default: the user config dir, where `llmproxy` looks first).",
)


def init_config(
    path: Path | None = PATH_OPTION,
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a commented starter config.

    Mode 0600 (it will hold keys), written atomically, never over an existing file without
    --force. Prints its path.

    \b
    Examples:
      llmproxy init
      llmproxy init --path ./llmproxy.toml --force
    """
    target = (path or default_path()).expanduser()
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to replace it")
    write_private(target, STARTER_CONFIG)
    stdout().print(str(target))
    stderr().print(
        "next: set ZAI_API_KEY and CEREBRAS_API_KEY (or edit the providers), then "
        "`llmproxy route test auto` and `llmproxy serve`",
    )


def write_private(target: Path, text: str) -> None:
    """Atomically: a temporary 0600 file in the same directory, then a rename over `target`, so
    a reader never sees half a file and the keys are never world-readable."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
