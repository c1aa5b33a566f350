"""The SSRF rules applied where it counts: on the addresses actually connected to.

A host name checked once at config load could resolve elsewhere later (DNS rebinding), so the
pooled session resolves every upstream host through `GuardedResolver`, which refuses the whole
answer if any address in it is refused. aiohttp never asks the resolver about IP literals; the
`url_guard` trace hook checks those (and every URL) before each request. Redirects are not
followed (the transport sends `allow_redirects=False`), so no second URL is ever fetched.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.config import Config
from proxy.security.ssrf import DestinationRefused, NetworkPolicy

PolicySource = Callable[[], NetworkPolicy]


def policy_for(config: Config) -> NetworkPolicy:
    return NetworkPolicy.build(
        config.security.ssrf.allow_localhost,
        config.security.ssrf.allow_private_ips,
        (p.api_base_url for p in config.providers if p.allow_private_network),
    )


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (aiohttp's default resolver unless given), then checks every
    address against the policy in force at that moment."""

    def __init__(self, policy: PolicySource, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

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


def url_guard(policy: PolicySource) -> aiohttp.TraceConfig:
    """A trace hook refusing any request whose URL breaks the policy (IP literals included).

    Verdicts are remembered per policy and origin (scheme, host, port): the same few provider
    origins come back on every request, and judging one parses addresses."""
    verdicts: dict[tuple[str, str | None, int | None], str | None] = {}
    judged_under: list[NetworkPolicy] = []  # the policy `verdicts` belong to

    async def on_request_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        current = policy()
        if not judged_under or judged_under[0] is not current or len(verdicts) > 1024:
            verdicts.clear()
            judged_under[:] = [current]
        url = params.url
        key = (url.scheme, url.host, url.port)
        if key in verdicts:
            problem = verdicts[key]
        else:
            problem = verdicts[key] = current.url_refusal(str(url))
        if problem is not None:
            raise DestinationRefused(f"{url.host}: {problem}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace
