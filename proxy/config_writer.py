"""Config file edits that keep the user's file the user's: made on the original text with
tomlkit (comments, order and formatting kept), never on the expanded config, so a `$VAR`
reference stays a reference and no expanded secret ever reaches the disk.

Writes are atomic (temp file in the same directory, fsync, `os.replace`) and leave the file
mode 0600, as it may hold keys. Callers validate the rendered text with the real parser before
writing it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from proxy.errors import ConfigError

REDACTED = "[REDACTED]"
"""What the management API shows for a secret; sent back, it means 'keep the current value'."""
SECRET_KEYS = frozenset({"api_key"})
FILE_MODE = 0o600


def parse_document(text: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError("", f"invalid TOML: {exc}") from None


def render(document: TOMLDocument) -> str:
    return tomlkit.dumps(document)


def _toml_value(value: Any, key: str) -> Any:
    """JSON value -> tomlkit item; lists of tables become arrays of tables."""
    if value is None:
        raise ConfigError(key, "null is only allowed as a whole value, to remove a key")
    if isinstance(value, dict):
        if not any(isinstance(item, dict | list) for item in value.values()):
            # `headers = { ... }` stays on its provider's lines, where a reader looks for it
            inline = tomlkit.inline_table()
            for name, item in value.items():
                inline[name] = _toml_value(item, f"{key}.{name}")
            return inline
        table = tomlkit.table()
        table.trivia.indent = "\n"  # its header apart from what comes before...
        for name, item in value.items():
            table[name] = _toml_value(item, f"{key}.{name}")
        table.add(tomlkit.nl())  # ...and from the header that follows
        return table
    if isinstance(value, list):
        items = [_toml_value(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if items and all(isinstance(i, Table) for i in items):
            return _aot(items)
        return items
    return value


def _aot(tables: list[Table]) -> AoT:
    array = tomlkit.aot()
    for table in tables:
        array.append(table)
    return array


def _set(table: Table, name: str, value: Any) -> None:
    """Set a key; a new one goes right after the table's last key, not at its end, where the
    comments that introduce the next table (or commented-out examples) sit."""
    body = table.value.body
    after = 1 + max(
        (
            i
            for i, (key, item) in enumerate(body)
            if key is not None and not isinstance(item, Table | AoT)
        ),
        default=-1,
    )
    if name in table or isinstance(value, Table | AoT) or after >= len(body):
        table[name] = value
        return
    # tomlkit has no public insert; `_insert_at` keeps its key index right
    table.value._insert_at(after, name, value)


def _merge(table: Table, changes: Mapping[str, Any], path: str) -> None:
    """Set each changed key in place; None removes it; REDACTED leaves a secret as it is."""
    for name, value in changes.items():
        key = f"{path}.{name}"
        if value is None:
            if name in table:
                del table[name]
        elif name in SECRET_KEYS and value == REDACTED:
            continue
        elif name == "headers" and isinstance(value, dict) and isinstance(table.get(name), dict):
            current = table[name]
            for header, header_value in value.items():
                if header_value is None:
                    current.pop(header, None)
                elif header_value != REDACTED:
                    current[header] = _toml_value(header_value, f"{key}.{header}")
        else:
            _set(table, name, _toml_value(value, key))


def set_router(document: TOMLDocument, changes: Mapping[str, Any]) -> None:
    router = document.get("router")
    if not isinstance(router, Table):
        raise ConfigError("router", "the file has no [router] table to edit")
    _merge(router, changes, "router")


def _providers(document: TOMLDocument) -> AoT | None:
    providers = document.get("providers")
    return providers if isinstance(providers, AoT) else None


def _index(providers: AoT | None, name: str) -> int | None:
    if providers is None:
        return None
    return next((i for i, t in enumerate(providers) if t.get("name") == name), None)


def upsert_provider(document: TOMLDocument, name: str, changes: Mapping[str, Any]) -> bool:
    """Merge `changes` into the provider called `name`, or append a new one. True if new."""
    if changes.get("name", name) != name:
        raise ConfigError("providers.name", f"the body names {changes['name']!r}, the URL {name!r}")
    providers = _providers(document)
    index = _index(providers, name)
    if providers is None or index is None:
        table = tomlkit.table()
        table.trivia.indent = "\n"  # a blank line before its header, like the others
        table["name"] = name
        _merge(table, {k: v for k, v in changes.items() if k != "name"}, "providers")
        if providers is None:
            document["providers"] = _aot([table])
        else:
            providers.append(table)
        return True
    _merge(providers[index], changes, f"providers[{index}]")
    return False


def remove_provider(document: TOMLDocument, name: str) -> None:
    providers = _providers(document)
    index = _index(providers, name)
    if providers is None or index is None:
        raise ConfigError("providers", f"no provider named {name!r}")
    del providers[index]


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` all at once: a reader sees the old file or the new one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.chmod(temp, FILE_MODE)  # mkstemp's default on POSIX; said here, not assumed
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
