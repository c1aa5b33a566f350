"""What a management change may not do, whoever holds the secret: read secrets back.

The management secret lets its holder change routes and providers; it must not let them read
the daemon's environment or files, or send a stored key somewhere new. So, for every change
made through the API (a file edited by hand or reloaded is the operator's own, and unaffected):

- `$VAR` references are accepted only where secrets go (`api_key`, `headers` values), which
  are never shown; anywhere else a variable would come back expanded (in the config, in
  `/v1/models`). A literal `$` is written `$$`.
- a reference may not name a variable another provider's secret uses: that would move that
  provider's key to this provider's URL.
- a changed `api_base_url` (or `token_endpoint`) needs the credentials again in the same
  change: a key stored for one host never follows the URL to another. A codex provider's
  credential is its token store, which the API cannot give: its URLs are changed in the file.
- `auth_file` must lie under llmproxy's own config, data or state directories.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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


def check_provider_change(document: TOMLDocument, name: str, changes: Mapping[str, Any]) -> None:
    """Before the edit: where references may go, and which variables they may name."""
    _no_references({k: v for k, v in changes.items() if k not in SECRET_FIELDS}, "providers")
    taken = _secret_variables(document, besides=name)
    for key, value in _secret_values(changes):
        for variable in references(value):
            if variable in taken:
                raise ConfigError(
                    f"providers.{key}",
                    f"${variable} holds provider {taken[variable]!r}'s secret: a key stays with "
                    "its provider's URL (give this provider its own)",
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
            raise ConfigError("providers.format", "codex providers use a ChatGPT sign-in the "
                              "management API cannot give; add them in the config file")
        return
    moved = [f for f in URL_FIELDS if getattr(before, f) != getattr(after, f)]
    if not moved:
        return
    field = moved[0]
    if after.format is ProviderFormat.CODEX:
        raise ConfigError(f"providers.{field}", "a codex provider's URLs receive its ChatGPT "
                          "sign-in; change them in the config file")
    if before.api_key and not _given(changes.get("api_key")):
        raise ConfigError("providers.api_key", f"{field} changed: give api_key again in the "
                          "same change (the stored key stays with the old URL)")
    headers = changes.get("headers")
    for header in before.headers:
        if not _given(headers.get(header) if isinstance(headers, dict) else None):
            raise ConfigError(f"providers.headers.{header}", f"{field} changed: give every "
                              "header again in the same change (they may hold credentials)")


def _given(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and value != REDACTED


def _check_auth_file(path: str) -> None:
    resolved = Path(os.path.realpath(Path(path).expanduser()))
    allowed = [Path(os.path.realpath(p)) for p in allowed_auth_dirs()]
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise ConfigError("providers.auth_file", "a token store must lie under llmproxy's "
                          f"config, data or state directory ({', '.join(map(str, allowed))})")


def allowed_auth_dirs() -> list[Path]:
    dirs = [platformdirs.user_config_path("llmproxy"), platformdirs.user_data_path("llmproxy"),
            platformdirs.user_state_path("llmproxy")]
    if named := os.environ.get("LLMPROXY_STATE_DIR"):
        dirs.append(Path(named).expanduser())
    return dirs


def _no_references(changes: Any, path: str) -> None:
    for key, value in _strings(changes, path):
        if references(value):
            raise ConfigError(key, "environment variables ($NAME) are expanded only in api_key "
                              "and headers through the management API; write the value itself "
                              "($$ for a literal '$')")


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


def _secret_variables(document: TOMLDocument, *, besides: str) -> dict[str, str]:
    """Variable -> the provider whose secret names it, for every provider but `besides`."""
    found: dict[str, str] = {}
    providers = document.get("providers")
    for table in providers if isinstance(providers, list) else []:
        name = str(table.get("name", ""))
        if name == besides:
            continue
        for _, value in _secret_values(table):
            for variable in references(str(value)):
                found.setdefault(variable, name)
    return found

