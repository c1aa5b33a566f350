"""`llmproxy code` and `llmproxy codex`: run a coding agent through the proxy.

Like claude-code-router's `ccr code`: make sure a daemon answers (start one in the background
with the user's config when none does), then run the agent with its base URL and the client
key pointing at it, every argument passed through, and its exit status handed back. The agent
replaces nothing of the user's own configuration: Claude Code gets environment variables,
the Codex CLI a provider given on its command line (`-c`), so its config file is untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import typer

from cli._address import START_HINT, daemon_url
from cli._config import NO_CONFIG, load_optional
from cli._output import fail, stderr
from cli.daemon import EXIT_NOT_RUNNING, find_daemon, start_detached
from proxy.frozen import frozen

ARGS = typer.Argument(
    None,
    help="Passed to the agent as given (`--` first for options "
    "llmproxy would read, e.g. `llmproxy code -- --help`).",
)
# Long names only: `-c` is the Codex CLI's own (`codex -c key=value`).
LAUNCH_URL = typer.Option(
    None,
    "--url",
    help="The daemon at this URL (default: the one "
    "`serve --detach` started, else the configured address).",
)
LAUNCH_CONFIG = typer.Option(
    None,
    "--config",
    dir_okay=False,
    help="Config file (default: "
    "$LLMPROXY_CONFIG, the user config dir, then "
    "/etc/llmproxy/config.toml); started with it when none answers.",
)
PROVIDER_ID = "llmproxy"  # the Codex CLI reserves `openai`, `ollama` and `lmstudio`
KEY_VARIABLE = "LLMPROXY_API_KEY"
ANY_KEY = "llmproxy"  # a daemon without client keys takes any; the agents insist on one


@frozen
class Daemon:
    url: str
    key: str


def ensure_daemon(url: str | None, config: Path | None) -> Daemon:
    """The daemon's URL (as `stop` and `status` find it) and a client key for it, starting the
    configured one if nothing answers. A daemon that answers needs no config file here
    (`serve --simulate`). No provider secret is read: a daemon that is started reads them."""
    found = find_daemon(url, config, os.environ.get(KEY_VARIABLE))
    if found.answer is None:
        if url is not None:
            fail(f"nothing answers at {found.url}; {START_HINT}", code=EXIT_NOT_RUNNING)
        settings = load_optional(config, secrets=False)
        if settings is None:
            fail(f"no daemon answers at {found.url} and {NO_CONFIG}")
        found_url = daemon_url(settings)
        source = str(Path(settings.source).resolve())
        stderr().print(f"starting llmproxy in the background on {found_url} ({source})")
        start_detached(["--config", source], found_url)
        return Daemon(found_url, found.api_key or ANY_KEY)
    return Daemon(found.url, found.api_key or ANY_KEY)


def claude_environment(daemon: Daemon, env: Mapping[str, str]) -> dict[str, str]:
    """Claude Code sends `ANTHROPIC_AUTH_TOKEN` as a bearer token (no "use this API key?"
    prompt); a real Anthropic key in the environment would be sent to the proxy instead of the
    client key, so it is left out."""
    child = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
    child.update(ANTHROPIC_BASE_URL=daemon.url, ANTHROPIC_AUTH_TOKEN=daemon.key)
    return child


def codex_arguments(daemon: Daemon) -> list[str]:
    """A provider for this run only: the Responses API at the daemon, the key from
    $LLMPROXY_API_KEY (values are TOML, as in the Codex CLI's config file)."""
    provider = (
        f'{{ name = "llmproxy", base_url = "{daemon.url}/v1", wire_api = "responses", '
        f'env_key = "{KEY_VARIABLE}" }}'
    )
    return [
        "-c",
        f'model_provider="{PROVIDER_ID}"',
        "-c",
        f"model_providers.{PROVIDER_ID}={provider}",
    ]


def launch_code(
    args: list[str] | None = ARGS, url: str | None = LAUNCH_URL, config: Path | None = LAUNCH_CONFIG
) -> None:
    """Run Claude Code through llmproxy (starts the daemon if none answers).

    Sets ANTHROPIC_BASE_URL and the client key (as ANTHROPIC_AUTH_TOKEN) for `claude` only;
    the exit status is claude's.

    \b
    Examples:
      llmproxy code
      llmproxy code -p "explain this repository"
      llmproxy code -- --help
      llmproxy code --url http://127.0.0.1:4000    # the daemon there, not the configured one
    """
    claude = installed("claude", "Claude Code (`npm install -g @anthropic-ai/claude-code`)")
    daemon = ensure_daemon(url, config)
    _run(claude, list(args or ()), claude_environment(daemon, os.environ))


def launch_codex(
    args: list[str] | None = ARGS, url: str | None = LAUNCH_URL, config: Path | None = LAUNCH_CONFIG
) -> None:
    """Run the Codex CLI through llmproxy (starts the daemon if none answers).

    Adds a `llmproxy` model provider on codex's command line (Responses API at the daemon,
    key from $LLMPROXY_API_KEY); ~/.codex/config.toml is not changed. The exit status is codex's.

    \b
    Examples:
      llmproxy codex
      llmproxy codex exec "fix the failing test"
      llmproxy codex -m thinking
    """
    codex = installed("codex", "the Codex CLI (`npm install -g @openai/codex`)")
    daemon = ensure_daemon(url, config)
    env = {**os.environ, KEY_VARIABLE: daemon.key}
    _run(codex, codex_arguments(daemon) + list(args or ()), env)


def installed(program: str, install: str) -> str:
    """The agent's executable, checked before any daemon is started for it."""
    executable = shutil.which(program)
    if executable is None:
        fail(
            f"`{program}` is not installed (not on PATH); install {install}, then run this again",
            code=127,
        )
    return executable


def _run(executable: str, args: list[str], env: dict[str, str]) -> NoReturn:
    program = Path(executable).name
    sys.stdout.flush()
    sys.stderr.flush()
    # The agent takes this process's place: the terminal, Ctrl-C and the exit status are its
    # own, with nothing in between (the daemon runs detached).
    os.execve(executable, [program, *args], env)
