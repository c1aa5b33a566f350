"""What a management change may not do, whoever holds the secret: read secrets back.

The management secret lets its holder change routes and providers; it must not let them read
the daemon's environment or files, or send a stored key somewhere new. So, for every change
made through the API (a file edited by hand or reloaded is the operator's own, and unaffected):

- `$VAR` references are accepted only where secrets go (`api_key`, `headers` values), which
  are never shown; anywhere else a variable would come back expanded (in the config, in
  `/v1/models`). A literal `$` is written `$$`.
- a reference may name only a variable this provider's secrets already name in the config
  file, or one the operator listed in `[management] secret_variables` (read at start, like the
  rest of `[management]`). Anything else would send an arbitrary variable of the daemon's
  environment to a URL of the caller's choosing. The refusal reads the same whether or not the
  variable exists.
- even a listed variable may not be one another provider's secret uses: that would move that
  provider's key to this provider's URL.
- a changed `api_base_url` (or `token_endpoint`) needs the credentials again in the same
  change, as values or listed variables, and no secret in that change (the key, or any header,
  old or new) may name a variable that is not listed: a key stored for one host never follows
  the URL to another, not even by naming its variable again. A codex provider's credential is
  its token store, which the API cannot give: its URLs are changed in the file.
- `auth_file` must lie under llmproxy's own config, data or state directories.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import platformdirs
from tomlkit.toml_document import TOMLDocument

from proxy.config import Config
from proxy.config.env import references
from proxy.config_writer import REDACTED
from proxy.errors import ConfigError
from proxy.types import ProviderFormat

SECRET_FIELDS = frozenset({"api_key", "headers"})
URL_FIELDS = ("api_base_url", "token_endpoint")


def check_router_change(changes: Mapping[str, Any]) -> None:
    _no_references(changes, "router")


def check_provider_change(
    document: TOMLDocument, name: str, changes: Mapping[str, Any], listed: Collection[str]
) -> None:
    """Before the edit: where references may go, and which variables they may name (`listed`:
    the running `[management] secret_variables`)."""
    _no_references({k: v for k, v in changes.items() if k not in SECRET_FIELDS}, "providers")
    named = _secret_variables(document)
    own = {variable for variable, provider in named if provider == name}
    taken = {variable: provider for variable, provider in reversed(named) if provider != name}
    for key, value in _secret_values(changes):
        for variable in references(value):
            if variable not in own and variable not in listed:
                raise ConfigError(f"providers.{key}", _UNLISTED)
            if variable in taken:
                raise ConfigError(
                    f"providers.{key}",
                    f"${variable} holds provider {taken[variable]!r}'s secret: a key stays with "
                    "its provider's URL (give this provider its own)",
                )


_UNLISTED = (
    "through the management API a secret may name only a variable this provider's "
    "secrets already use, or one listed in the config file's [management] "
    "secret_variables; give the value itself, or list the variable and restart"
)


def check_credentials(old: Config, new: Config, name: str, changes: Mapping[str, Any]) -> None:
    """After parsing: a provider whose URL moved got its credentials anew, and token stores
    stay in llmproxy's directories."""
    before = old.provider(name)
    after = new.provider(name)
    if after is None:
        return
    if after.auth_file and (before is None or before.auth_file != after.auth_file):
        _check_auth_file(after.auth_file)
    if before is None:
        if after.format is ProviderFormat.CODEX:
            raise ConfigError(
                "providers.format",
                "codex providers use a ChatGPT sign-in the "
                "management API cannot give; add them in the config file",
            )
        return
    moved = [f for f in URL_FIELDS if getattr(before, f) != getattr(after, f)]
    if not moved:
        return
    field = moved[0]
    if after.format is ProviderFormat.CODEX:
        raise ConfigError(
            f"providers.{field}",
            "a codex provider's URLs receive its ChatGPT sign-in; change them in the config file",
        )
    listed = old.management.secret_variables
    if before.api_key and not _given(changes.get("api_key"), listed):
        raise ConfigError(
            "providers.api_key",
            f"{field} changed: give api_key again in the "
            "same change, as a value or a variable listed in [management] "
            "secret_variables (the stored key stays with the old URL)",
        )
    headers = changes.get("headers")
    for header in before.headers:
        if not _given(headers.get(header) if isinstance(headers, dict) else None, listed):
            raise ConfigError(
                f"providers.headers.{header}",
                f"{field} changed: give every "
                "header again in the same change (they may hold credentials)",
            )
    # A header added in the same change is checked too: naming the provider's own variable
    # there would carry the stored key to the new URL just as well.
    for key, value in _secret_values(changes):
        if any(variable not in listed for variable in references(value)):
            raise ConfigError(
                f"providers.{key}",
                f"{field} changed: a secret may name only a "
                "variable listed in [management] secret_variables (the stored "
                "key stays with the old URL)",
            )


def _given(value: Any, listed: Collection[str]) -> bool:
    """Given anew: not the redacted placeholder, and not a reference to the variable that
    already held it (which would carry the old key along) unless the operator listed it."""
    if not isinstance(value, str) or not value or value == REDACTED:
        return False
    return all(variable in listed for variable in references(value))


def _check_auth_file(path: str) -> None:
    resolved = Path(os.path.realpath(Path(path).expanduser()))
    allowed = [Path(os.path.realpath(p)) for p in allowed_auth_dirs()]
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise ConfigError(
            "providers.auth_file",
            "a token store must lie under llmproxy's "
            f"config, data or state directory ({', '.join(map(str, allowed))})",
        )


def allowed_auth_dirs() -> list[Path]:
    dirs = [
        platformdirs.user_config_path("llmproxy"),
        platformdirs.user_data_path("llmproxy"),
        platformdirs.user_state_path("llmproxy"),
    ]
    if named := os.environ.get("LLMPROXY_STATE_DIR"):
        dirs.append(Path(named).expanduser())
    return dirs


def _no_references(changes: Any, path: str) -> None:
    for key, value in _strings(changes, path):
        if references(value):
            raise ConfigError(
                key,
                "environment variables ($NAME) are expanded only in api_key "
                "and headers through the management API; write the value itself "
                "($$ for a literal '$')",
            )


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _secret_values(table: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    key = table.get("api_key")
    if isinstance(key, str):
        yield "api_key", key
    headers = table.get("headers")
    if isinstance(headers, Mapping):
        yield from ((f"headers.{h}", v) for h, v in headers.items() if isinstance(v, str))


def _secret_variables(document: TOMLDocument) -> list[tuple[str, str]]:
    """(variable, provider) for every variable a provider's secrets name in the file."""
    found: list[tuple[str, str]] = []
    providers = document.get("providers")
    for table in providers if isinstance(providers, list) else []:
        name = str(table.get("name", ""))
        for _, value in _secret_values(table):
            found += [(variable, name) for variable in references(str(value))]
    return found
