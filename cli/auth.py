"""`llmproxy auth`: the ChatGPT sign-in codex providers use. Tokens are never printed."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from cli._output import fail, print_json, stderr, stdout
from proxy.codex_auth import (
    CodexTokens,
    TokenStore,
    default_codex_auth_path,
    default_store_path,
    read_codex_auth_file,
)
from proxy.errors import ConfigError

app = typer.Typer(help="Manage the ChatGPT sign-in of codex providers.", no_args_is_help=True)

STORE_OPTION = typer.Option(
    None,
    "--store",
    help="llmproxy's token store (default: the user data dir; a codex "
    "provider's `auth_file` key names another).",
    dir_okay=False,
)

PATH_ARGUMENT = typer.Argument(
    None,
    help="The Codex CLI's auth.json (default: $CODEX_HOME/auth.json, else ~/.codex/auth.json).",
    dir_okay=False,
)


def describe(tokens: CodexTokens, store: Path, now: float | None = None) -> dict[str, Any]:
    """What `auth status` shows: everything but the tokens."""
    now = time.time() if now is None else now
    expires = tokens.expires_at
    return {
        "store": str(store),
        "account_id": tokens.account_id,
        "email": tokens.email,
        "plan": tokens.plan_type,
        "access_token_expires": _iso(expires),
        "expires_in_seconds": None if expires is None else round(expires - now),
        "expired": expires is not None and expires <= now,
        "has_refresh_token": bool(tokens.refresh_token),
        "last_refresh": tokens.last_refresh,
        "imported_from": tokens.imported_from,
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@app.command("import-codex")
def auth_import_codex(
    path: Path | None = PATH_ARGUMENT,
    store: Path | None = STORE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print what was imported as JSON."),
) -> None:
    """Copy the Codex CLI's ChatGPT sign-in into llmproxy's own token store (0600). Both the
    nested `tokens` shape and the older flat shape are read; the account id comes from the
    token claims when the file does not give it.

    \b
    Examples:
      llmproxy auth import-codex
      llmproxy auth import-codex ~/.codex/auth.json
      llmproxy auth import-codex backup/auth.json --store ~/.local/share/llmproxy/work.json
    """
    source = path or default_codex_auth_path(os.environ)
    target = store or default_store_path()
    try:
        tokens = read_codex_auth_file(source)
        TokenStore(target).save(tokens)
    except ConfigError as exc:
        fail(f"cannot import: {exc}")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}")
    summary = describe(tokens, target)
    if as_json:
        print_json(summary)
        return
    who = summary["email"] or summary["account_id"] or "unknown account"
    stderr().print(f"imported the ChatGPT sign-in of {who} into {target}")
    if tokens.account_id is None:
        stderr().print(
            "warning: no account id in the file or its tokens; requests will be "
            "sent without chatgpt-account-id"
        )


@app.command("status")
def auth_status(
    store: Path | None = STORE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show the stored sign-in: account, plan, expiry, last refresh (never the tokens).
    Exit status 1 when nothing is stored.

    \b
    Examples:
      llmproxy auth status
      llmproxy auth status --json
      llmproxy auth status --store ~/.local/share/llmproxy/work.json
    """
    target = store or default_store_path()
    try:
        tokens = TokenStore(target).load()
    except ConfigError as exc:
        fail(str(exc))
    if tokens is None:
        if as_json:
            print_json({"store": str(target), "signed_in": False})
        else:
            stderr().print(
                f"no ChatGPT sign-in stored in {target}: run `llmproxy auth import-codex`"
            )
        raise typer.Exit(1)
    summary = describe(tokens, target)
    if as_json:
        print_json({**summary, "signed_in": True})
        return
    out = stdout()
    for key, value in summary.items():
        label = key.replace("_", " ")
        if key == "expires_in_seconds":
            label = "expires in"  # the value is shown in minutes
            if value is not None:
                value = f"{value // 60} min" if value > 0 else "expired (refreshed on next use)"
        out.print(f"{label}: {'-' if value is None else value}")
