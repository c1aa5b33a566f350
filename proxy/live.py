"""The running app's config, replaceable while it serves (management API, reload).

aiohttp forbids changing an app's state once it has started, so the app holds one `LiveConfig`
and what changes is inside it: the config, the fallback runner built from it and the network
policy derived from it, swapped together in one assignment. A request reads `current` once and
keeps that snapshot to its end, so it never mixes an old route with a new provider table.

Every way of changing the config (management edits, `llmproxy reload`, SIGHUP, the file watch)
validates the new one with `replacement` first: a config that does not load is refused with its
key path and the running one stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from proxy.config import Config, parse_config, with_dotenv
from proxy.errors import ConfigError
from proxy.fallback import FallbackRunner
from proxy.frozen import frozen, replace
from proxy.security.resolver import policy_for
from proxy.security.ssrf import NetworkPolicy, url_refusal

STARTUP_PROXY_FIELDS = ("host", "port", "api_keys", "health")
"""`[proxy]` settings that only a restart changes (the listening socket, the client keys the
middleware holds, the breakers' thresholds)."""


@frozen
class Running:
    config: Config
    runner: FallbackRunner
    policy: NetworkPolicy
    since: float
    """Wall-clock time this config was applied."""


@frozen
class ReloadOutcome:
    """The last attempt to reload from disk, as `/health` reports it to `llmproxy reload`."""

    number: int
    at: float
    ok: bool
    message: str
    restart_required: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "at": round(self.at, 3),
            "ok": self.ok,
            "message": self.message,
            "restart_required": list(self.restart_required),
        }


class LiveConfig:
    def __init__(
        self,
        config: Config,
        make_runner: Callable[[Config], FallbackRunner],
        on_replace: Callable[[], None] | None = None,
    ) -> None:
        self._make_runner = make_runner
        self._on_replace = on_replace
        self._current = self._running(config)
        self.last_reload: ReloadOutcome | None = None

    def _running(self, config: Config) -> Running:
        return Running(config, self._make_runner(config), policy_for(config), time.time())

    @property
    def current(self) -> Running:
        return self._current

    @property
    def config(self) -> Config:
        return self._current.config

    def replace(self, config: Config) -> Running:
        """Apply `config` (already validated) to every request that starts from now on."""
        self._current = self._running(config)
        if self._on_replace is not None:
            self._on_replace()  # e.g. forget DNS answers judged under the previous policy
        return self._current

    def reload(self, path: Path | None, env: Mapping[str, str]) -> ReloadOutcome:
        """Read `path` again and apply it, or keep the running config and say why not (also
        when there is no file: `serve --simulate`)."""
        number = (self.last_reload.number if self.last_reload else 0) + 1
        if path is None:
            self.last_reload = ReloadOutcome(
                number, time.time(), False, "nothing to reload: no config file"
            )
            return self.last_reload
        try:
            text = path.read_text(encoding="utf-8")
            config, restart = replacement(text, path, env, self.config)
        except ConfigError as exc:
            outcome = ReloadOutcome(
                number, time.time(), False, f"config rejected, the running one is kept: {exc}"
            )
        except (OSError, UnicodeDecodeError) as exc:
            outcome = ReloadOutcome(number, time.time(), False, f"cannot read {path}: {exc}")
        else:
            self.replace(config)
            outcome = ReloadOutcome(number, time.time(), True, f"reloaded {path}", tuple(restart))
        self.last_reload = outcome
        return outcome


def replacement(
    text: str, path: Path, env: Mapping[str, str], running: Config
) -> tuple[Config, list[str]]:
    """`text` (the file at `path`, possibly edited) as the config to apply instead of
    `running`: validated, `$VAR`s from `env` over the `.env` next to it, and the settings only a
    restart can change put back to their running values. Also the names of those that differ.
    Raises ConfigError."""
    parsed = parse_config(text, with_dotenv(path, env), source=str(path))
    config, restart = _keep_startup_settings(parsed, running)
    _check_destinations(config)
    return config, restart


def _keep_startup_settings(new: Config, running: Config) -> tuple[Config, list[str]]:
    changed = [
        f"proxy.{name}"
        for name in STARTUP_PROXY_FIELDS
        if getattr(new.proxy, name) != getattr(running.proxy, name)
    ]
    changed += [
        name
        for name in ("security", "management", "state")
        if getattr(new, name) != getattr(running, name)
    ]
    proxy = replace(
        new.proxy, **{name: getattr(running.proxy, name) for name in STARTUP_PROXY_FIELDS}
    )
    kept = replace(
        new,
        proxy=proxy,
        security=running.security,
        management=running.management,
        state=running.state,
        catalog=running.catalog,
    )
    return kept, changed


def _check_destinations(config: Config) -> None:
    """Provider URLs against the [security] in force (the file's may differ until restart)."""
    ssrf = config.security.ssrf
    for index, provider in enumerate(config.providers):
        local = provider.allow_private_network
        problem = url_refusal(
            provider.api_base_url,
            allow_loopback=local or ssrf.allow_localhost,
            allow_private=local or ssrf.allow_private_ips,
        )
        if problem is not None:
            raise ConfigError(
                f"providers[{index}].api_base_url",
                f"{problem} (the running [security] settings apply until restart)",
            )
