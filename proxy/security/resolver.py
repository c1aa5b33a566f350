"""The SSRF rules applied where it counts: on the addresses actually connected to.

A host name checked once at config load could resolve elsewhere later (DNS rebinding), so the
session of `proxy.security.outgoing` resolves every upstream host through `GuardedResolver`,
which refuses the whole answer if any address in it is refused. aiohttp never asks the resolver
about IP literals; the session's URL guard checks those (and every URL) before each request.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver  # not `aiohttp.`: a daemon loads no client half

from proxy.config import Config
from proxy.security.ssrf import DestinationRefused, NetworkPolicy

PolicySource = Callable[[], NetworkPolicy]


def policy_for(config: Config) -> NetworkPolicy:
    return NetworkPolicy.build(
        config.security.ssrf.allow_localhost,
        config.security.ssrf.allow_private_ips,
        # A codex provider's token endpoint shares its provider's allowance (local test rigs).
        (
            url
            for p in config.providers
            if p.allow_private_network
            for url in (p.api_base_url, p.token_endpoint)
            if url
        ),
    )


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (aiohttp's default resolver unless given), then checks every
    address against the policy in force at that moment."""

    def __init__(self, policy: PolicySource, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        policy = self._policy()
        for result in results:
            problem = policy.address_refusal(result["host"], host)
            if problem is not None:
                raise DestinationRefused(f"{host} resolves to {result['host']}; {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()
