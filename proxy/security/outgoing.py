"""The one factory for outgoing HTTP sessions.

Every request llmproxy makes to something it does not own (a provider, the ChatGPT token
endpoint, a provider's model list) goes through a session made by `outgoing_session`: the
daemon's pooled session, and the sessions of the CLI commands that talk to providers from
their own process (`chat --in-process` and `route test --send` run the daemon's app itself;
`providers status --probe` and `providers refresh` use this factory directly). A second way to
build such a session would be the next hole, so there is none.

What every such session guarantees, whatever its caller asks:
- host names resolve through `GuardedResolver`: every address is checked when resolving for a
  new connection (DNS rebinding), under the policy in force at that moment. Answers are cached
  for 300 s and connections are pooled, so a reload that stops allowing loopback or private
  addresses applies to a host name's address at its next lookup or new connection, not at
  once (URLs with an IP literal are judged on every request, below);
- every URL is checked where the request is sent (`_guard`, a client middleware that runs for
  each hop), so IP literals, which never reach a resolver, are checked too;
- a redirect is never followed: a 3xx answer raises `RedirectRefused` before aiohttp could
  follow it, so a key never travels to a second host and nothing fetched from there comes back;
- no proxy or netrc from the environment (`trust_env=False`), and a connect timeout;
- no cookies: what an upstream sets is neither kept nor sent back (`DummyCookieJar`). A
  proxy's session is shared by every client, so a cookie kept from one answer would travel
  with every other client's requests.

Redaction of what is logged is attached by the owner of the session's lifetime
(`redacted_logs`), as it follows the config rather than the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from proxy.config import Config
from proxy.logging_setup import RedactingFilter, Redactor, attach_redaction
from proxy.security.resolver import GuardedResolver, PolicySource, policy_for
from proxy.security.ssrf import DestinationRefused, NetworkPolicy

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection when the caller sets no connect limit of its own."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The largest body read whole from an upstream (an answer, an error, a model list)."""


class RedirectRefused(DestinationRefused):
    """The upstream answered with a redirect; llmproxy never follows one."""


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """An upstream body was larger than llmproxy reads whole."""


def outgoing_session(
    policy: PolicySource, *, dns: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """A guarded session; `policy` is asked at every DNS lookup and request: a replaced config
    applies at once to URLs, and to a host name's addresses once its cached answer (300 s) or
    pooled connection is gone. `dns` replaces the system resolver (tests)."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, ttl_dns_cache=300, resolver=GuardedResolver(policy, dns)
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT),
        middlewares=(_guard(policy),),
    )


@contextlib.asynccontextmanager
async def config_session(
    config: Config, *, dns: AbstractResolver | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """A guarded session under `config`'s policy, with its secrets masked in the logs, for one
    CLI command; closed on exit."""
    policy = policy_for(config)
    with redacted_logs(Redactor.from_config(config)):
        async with outgoing_session(lambda: policy, dns=dns) as session:
            yield session


@contextlib.contextmanager
def redacted_logs(redactor: Redactor) -> Iterator[RedactingFilter]:
    log_filter = RedactingFilter(redactor)
    detach = attach_redaction(log_filter)
    try:
        yield log_filter
    finally:
        detach()


@dataclass
class _Verdicts:
    """URL verdicts per origin (scheme, host, port) under one policy: the same few provider
    origins come back on every request, and judging one parses addresses."""

    policy: NetworkPolicy | None = None
    known: dict[tuple[str, str | None, int | None], str | None] = field(default_factory=dict)

    def refusal(self, policy: NetworkPolicy, url: URL) -> str | None:
        if policy is not self.policy or len(self.known) > 1024:
            self.policy, self.known = policy, {}
        key = (url.scheme, url.host, url.port)
        if key not in self.known:
            self.known[key] = policy.url_refusal(str(url))
        return self.known[key]


def _guard(policy: PolicySource) -> aiohttp.ClientMiddlewareType:
    verdicts = _Verdicts()

    async def guard(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        problem = verdicts.refusal(policy(), request.url)
        if problem is not None:
            raise DestinationRefused(f"{request.url.host}: {problem}")
        response = await handler(request)
        if response.status in REDIRECT_STATUSES:
            response.close()
            raise RedirectRefused(
                f"{request.url.host} answered {response.status} with a redirect, which "
                "llmproxy never follows"
            )
        return response

    return guard


def refusal_in(exc: BaseException) -> DestinationRefused | None:
    """The guard's refusal behind an aiohttp error (the resolver's is wrapped in a
    ClientConnectorError; one raised by the guard once the request is under way, a redirect,
    becomes the cause of a ClientOSError), or None."""
    if isinstance(exc, DestinationRefused):
        return exc
    if isinstance(exc, aiohttp.ClientOSError) and isinstance(exc.__cause__, DestinationRefused):
        return exc.__cause__
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, DestinationRefused
    ):
        return exc.os_error
    return None


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or AnswerTooLarge as soon as it passes `limit` bytes (the connection is
    then dropped: the rest is never read)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()
        raise AnswerTooLarge(f"upstream body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            response.close()
            raise AnswerTooLarge(f"upstream body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
