"""The one factory for outgoing HTTP clients.

Every request llmproxy makes to something it does not own (a provider, the ChatGPT token
endpoint, a provider's model list) goes through a client made by `outgoing_client`: the
daemon's pooled client, and the clients of the CLI commands that talk to providers from their
own process (`chat --in-process` and `route test --send` run the daemon's app itself;
`providers status --probe` and `providers refresh` use `config_client`). A second way to build
such a client would be the next hole, so there is none.

The client is llmproxy's own (`proxy.security.http1`, on asyncio's protocol API): aiohttp's
`ClientSession` was a quarter of the daemon's CPU on a small request. What every such client
guarantees, whatever its caller asks:
- host names resolve through `GuardedResolver`: every address is checked when resolving for a
  new connection (DNS rebinding), under the policy in force at that moment. Answers are kept
  for 300 s and connections are pooled, so a reload that stops allowing loopback or private
  addresses applies to a host name's address at its next lookup or new connection, not at
  once (URLs with an IP literal are judged on every request, below);
- every request's URL is judged before anything is sent (verdicts kept per origin under one
  policy), so IP literals, which never reach a resolver, are checked too;
- a redirect is never followed: a 3xx answer raises `RedirectRefused`, so a key never travels
  to a second host and nothing fetched from there comes back;
- no proxy or netrc from the environment, no cookies (what an upstream sets is neither kept
  nor sent back: the daemon's client serves every client of the daemon), and a connect
  timeout; https is verified, with SNI.

Redaction of what is logged is attached by the owner of the client's lifetime
(`redacted_logs`), as it follows the config rather than the client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver
from yarl import URL

from proxy.config import Config
from proxy.logging_setup import RedactingFilter, Redactor, attach_redaction
from proxy.security.http1 import BadResponse, Client
from proxy.security.http1_wire import Response
from proxy.security.resolver import GuardedResolver, PolicySource, policy_for
from proxy.security.ssrf import NetworkPolicy

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection when the caller sets no connect limit of its own."""
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The largest body read whole from an upstream (an answer, an error, a model list)."""


class AnswerTooLarge(BadResponse):
    """An upstream body was larger than llmproxy reads whole."""


def outgoing_client(policy: PolicySource, *, dns: AbstractResolver | None = None) -> Client:
    """A guarded client; `policy` is asked at every DNS lookup and request: a replaced config
    applies at once to URLs, and to a host name's addresses once its kept answer (300 s) or
    pooled connection is gone. `dns` replaces the system resolver (tests)."""
    verdicts = _Verdicts()
    return Client(
        lambda url: verdicts.refusal(policy(), url),
        GuardedResolver(policy, dns),
        connect_timeout=CONNECT_TIMEOUT,
    )


@contextlib.asynccontextmanager
async def config_client(
    config: Config, *, dns: AbstractResolver | None = None
) -> AsyncIterator[Client]:
    """A guarded client under `config`'s policy, with its secrets masked in the logs, for one
    CLI command; closed on exit."""
    policy = policy_for(config)
    with redacted_logs(Redactor.from_config(config)):
        client = outgoing_client(lambda: policy, dns=dns)
        try:
            yield client
        finally:
            await client.close()


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


async def read_capped(response: Response, limit: int) -> bytes:
    """The whole body, or AnswerTooLarge as soon as it passes `limit` bytes (the connection is
    then dropped: the rest is never read)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()
        raise AnswerTooLarge(f"upstream body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.readany():
        size += len(chunk)
        if size > limit:
            response.close()
            raise AnswerTooLarge(f"upstream body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
