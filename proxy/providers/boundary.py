"""The one boundary where lower-layer exceptions become llmproxy's errors.

Like httpx's `map_httpcore_exceptions`, one context manager wraps every call down into aiohttp
and the socket layer (sending, reading a body, reading a stream, refreshing a sign-in) and turns
what escapes into the error tree (`proxy.errors`):

    TimeoutError                          -> UpstreamTimeoutError   (the stage that timed out)
    DestinationRefused (the SSRF guard)   -> UpstreamRefusedError   (never retried)
    aiohttp.ClientConnectorError          -> UpstreamRefusedError   (nobody listens, DNS)
    aiohttp.ClientError, ConnectionError  -> UpstreamConnectionError

An UpstreamError raised inside passes unchanged. Nothing else in `proxy/` catches aiohttp's or
the socket layer's exceptions on the way to a provider; translators and decoders only report
what they saw (`UpstreamFault`), and `proxy.classify` reads status and wording.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from proxy.security.ssrf import DestinationRefused
from proxy.types import Target


@contextmanager
def upstream_errors(
    target: Target | None, stage: str, peer: str = "the provider"
) -> Iterator[None]:
    """Map what escapes the block. `stage` names what was being waited for ("response
    headers", "first token"...), `peer` who was being talked to."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeoutError(f"no answer in time ({stage})", target=target) from exc
    except DestinationRefused as exc:
        raise UpstreamRefusedError(f"destination refused: {exc}", target=target) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamRefusedError(
            f"cannot connect to {peer}: {exc.os_error}", target=target
        ) from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamConnectionError(
            f"connection to {peer} lost ({stage}): {exc}", target=target
        ) from exc
