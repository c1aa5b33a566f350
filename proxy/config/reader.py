"""Reading TOML tables with key paths: every error names the dotted key it is about."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from proxy.errors import ConfigError, closest
from proxy.types import Scenario

_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
)


def type_name(value: Any) -> str:
    return next((name for t, name in _TOML_TYPES if isinstance(value, t)), "datetime")


MISSING: Any = object()


def config_warning(message: str, *args: object) -> None:
    """A warning about the config, on the `llmproxy.config` logger (logging is imported only
    when there is one: the CLI's start-up does without it)."""
    import logging

    logging.getLogger("llmproxy.config").warning(message, *args)


# What aiohttp refuses in a header it sends (a bare ValueError, "Forbidden control character"):
# any control character but tab. A value that becomes a header (a key, a configured header, a
# sign-in's token) is checked once where it is read, so nothing is checked per request.
NOT_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_fault(value: str) -> str | None:
    """Why `value` cannot be sent as a header, naming the character but never the value (it is
    often a secret); None when it can."""
    found = NOT_IN_HEADERS.search(value)
    if found is None:
        return None
    return f"holds a control character (U+{ord(found.group()):04X}), which no HTTP header can carry"


_REFERENCE_ONLY_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "router.plan_implementation": "the reference's plan_implementation route is not supported",
        "router.model_exclusions": "model_exclusions is not supported; narrow providers' models",
    }
)
_ROUTER_SCALARS = frozenset(
    {s.value for s in Scenario}
    | {"long_context_threshold", "background_model_pattern", "strategy", "taxonomy_dir"}
)


class TableReader:
    """One TOML table plus its key path; rejects unknown keys when it is made."""

    def __init__(
        self, data: Any, path: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected table, got {type_name(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        for key in data:
            if key in compat:
                config_warning("%s: accepted for compatibility but has no effect", self.key(key))
            elif key not in known:
                raise ConfigError(self.key(key), self._unknown(key, known))

    def _unknown(self, key: str, known: tuple[str, ...]) -> str:
        general = re.sub(r"\[\d+\]", "", self.key(key))
        if general in _REFERENCE_ONLY_KEYS:
            return f"unknown key ({_REFERENCE_ONLY_KEYS[general]})"
        for array, noun in (("model_mappings", "mapping"), ("keyword_rules", "rule")):
            if f"router.{array}" in general and key in _ROUTER_SCALARS:
                return (
                    f"unknown key (a router key written after a [[router.{array}]] table "
                    f"lands in that {noun}: move '{key}' above the first {noun})"
                )
        close = closest(key, known)
        return f"unknown key (did you mean '{close}'?)" if close else "unknown key"

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], expected: str, default: Any) -> Any:
        value = self.data.get(name, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise ConfigError(self.key(name), "required key is missing")
            return default
        # bool is an int subclass; TOML keeps them apart, so must we
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ConfigError(self.key(name), f"expected {expected}, got {type_name(value)}")
        return value

    def string(self, name: str, default: Any = MISSING, *, empty_ok: bool = True) -> Any:
        value = self.get(name, str, "string", default)
        if not empty_ok and isinstance(value, str) and not value.strip():
            raise ConfigError(self.key(name), "must not be empty")
        return value

    def header_value(self, name: str, default: Any = MISSING, *, empty_ok: bool = True) -> Any:
        """A string sent as an HTTP header (a key, a configured header)."""
        value = self.string(name, default, empty_ok=empty_ok)
        fault = header_fault(value) if isinstance(value, str) else None
        if fault:
            raise ConfigError(self.key(name), fault)
        return value

    def integer(self, name: str, default: Any = MISSING, *, low: int = 1, high: int = 2**53) -> Any:
        value = self.get(name, int, "integer", default)
        if value is not None and not low <= value <= high:
            raise ConfigError(self.key(name), f"must be between {low} and {high}, got {value}")
        return value

    def millis(self, name: str, default: Any = MISSING, *, zero_ok: bool = False) -> Any:
        """A duration in milliseconds, returned in seconds."""
        value = self.get(name, (int, float), "number of milliseconds", default)
        if value is None:
            return None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise ConfigError(self.key(name), f"must be {'>= 0' if zero_ok else '> 0'}")
        return float(value) / 1000

    def boolean(self, name: str, default: Any = MISSING) -> Any:
        return self.get(name, bool, "boolean", default)

    def strings(self, name: str, default: Any = MISSING) -> Any:
        value = self.get(name, list, "array of strings", default)
        for i, item in enumerate(value or ()):
            if not isinstance(item, str):
                got = type_name(item)
                raise ConfigError(f"{self.key(name)}[{i}]", f"expected string, got {got}")
        return value

    def table(
        self, name: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> TableReader | None:
        return (
            TableReader(self.data[name], self.key(name), known, compat)
            if name in self.data
            else None
        )

    def tables(
        self, name: str, known: tuple[str, ...], compat: tuple[str, ...] = ()
    ) -> Iterator[TableReader]:
        items = self.get(name, list, "array of tables", [])
        for i, item in enumerate(items):
            yield TableReader(item, f"{self.key(name)}[{i}]", known, compat)


# the name before the split into a package, for importers written against it
