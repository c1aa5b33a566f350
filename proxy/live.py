"""The running app's config, replaceable while it serves (management API, reload).

aiohttp forbids changing an app's state once it has started, so the app holds one `LiveConfig`
and what changes is inside it: the config, the fallback runner built from it and the network
policy derived from it, swapped together in one assignment. A request reads `current` once and
keeps that snapshot to its end, so it never mixes an old route with a new provider table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.config import Config
from proxy.fallback import FallbackRunner
from proxy.security.resolver import policy_for
from proxy.security.ssrf import NetworkPolicy


@dataclass(frozen=True, slots=True)
class Running:
    config: Config
    runner: FallbackRunner
    policy: NetworkPolicy
    since: float
    """Wall-clock time this config was applied."""


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

