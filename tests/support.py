"""Shared test helpers: a config for simulated providers, and the daemon on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from proxy.config import Config, parse_config
from proxy.security.http1 import Client
from proxy.security.outgoing import outgoing_client
from proxy.security.ssrf import NetworkPolicy
from proxy.server import build_app
from proxy.serving import DaemonRunner
from proxy.simulate import SimulatedProvider

CLIENT_KEY = "sk-client-test-key"
# The simulators listen on 127.0.0.1, which the SSRF rules refuse unless a config allows it.
ALLOW_LOCALHOST = "[security.ssrf_protection]\nallow_localhost = true"


def config_text(
    sims: Mapping[str, SimulatedProvider],
    routes: Mapping[str, str],
    *,
    mappings: Sequence[tuple[str, str]] = (),
    proxy: str = "",
    timeouts: str = "",
    extra_providers: str = "",
    provider_extra: Mapping[str, str] | None = None,
    security: str = ALLOW_LOCALHOST,
) -> str:
    """TOML for a daemon in front of `sims`; each sim serves the models it was built with.
    `security` is the `[security...]` text (default: loopback upstreams allowed)."""
    lines = [
        "[proxy]",
        f'api_key = "{CLIENT_KEY}"',
        proxy,
        "[proxy.timeouts]",
        timeouts,
        security,
        "[router]",
    ]
    lines += [f'{name} = "{chain}"' for name, chain in routes.items()]
    for source, target in mappings:
        lines += ["[[router.model_mappings]]", f'from = "{source}"', f'to = "{target}"']
    for sim in sims.values():
        models = ", ".join(f'"{m}"' for m in sim.models)
        lines += [
            "[[providers]]",
            f'name = "{sim.name}"',
            f'api_base_url = "{sim.base_url}"',
            f'api_key = "{sim.api_key or "sim-key"}"',
            f"models = [{models}]",
            f'format = "{sim.format}"',
            (provider_extra or {}).get(sim.name, ""),
        ]
    lines.append(extra_providers)
    return "\n".join(lines) + "\n"


@dataclass
class Daemon:
    server: TestServer
    config: Config

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"


class DaemonTestServer(TestServer):
    """aiohttp's test server, running the app the way `llmproxy serve` does."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        assert self.app is not None
        return DaemonRunner(self.app, **kwargs)


async def start_daemon(text: str) -> Daemon:
    config = parse_config(text, env={})
    app: web.Application = build_app(config)
    server = DaemonTestServer(app, host="127.0.0.1")
    await server.start_server()
    return Daemon(server, config)


async def request_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The request lines (`llmproxy.requests`) caught so far, once there are `count` of them: the
    observer writes a batch of lines every `[journal] flush_ms` (200 ms), not one per request."""
    for _ in range(100):
        lines = [r for r in caplog.records if r.name == "llmproxy.requests"]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.02)
    return lines


@contextlib.asynccontextmanager
async def local_client() -> AsyncIterator[Client]:
    """The outgoing client under a policy that allows this machine (where simulators listen)."""
    policy = NetworkPolicy.build(True, False, ())
    client = outgoing_client(lambda: policy)
    try:
        yield client
    finally:
        await client.close()
