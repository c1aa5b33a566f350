"""The one boundary where lower-layer exceptions become llmproxy's errors.

Like httpx's `map_httpcore_exceptions`, one context manager wraps every call down into the
outgoing client (`proxy.security.http1`) and the socket layer (sending, reading a body, reading
a stream, refreshing a sign-in) and turns what escapes into the error tree (`proxy.errors`):

    TimeoutError                          -> UpstreamTimeoutError   (the stage that timed out)
    RedirectRefused, DestinationRefused   -> UpstreamRefusedError   (never retried)
      (the SSRF guard, also behind the guarded resolver)
    HeaderRefused (a control character,   -> UpstreamRefusedError   (nothing was sent)
      or a character it cannot encode)
    ConnectFailed                         -> UpstreamRefusedError   (nobody listens, DNS, TLS)
    Disconnected, BadResponse, OSError    -> UpstreamConnectionError

The exceptions' own text names hosts and addresses: it is logged, and reaches an attempt's
detail (which clients see) only while the daemon logs at debug level.

An UpstreamError raised inside passes unchanged. Nothing else in `proxy/` catches the client's
or the socket layer's exceptions on the way to a provider; translators and decoders only report
what they saw (`UpstreamFault`), and `proxy.classify` reads status and wording.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from contextlib import AbstractContextManager
from types import TracebackType

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from proxy.security.http1 import ConnectFailed, RedirectRefused
from proxy.security.http1_wire import HeaderRefused
from proxy.security.ssrf import DestinationRefused
from proxy.types import Target

log = logging.getLogger("llmproxy.upstream")


def upstream_errors(
    target: Target | None, stage: str, peer: str = "the provider"
) -> AbstractContextManager[None]:
    """Map what escapes the block. `stage` names what was being waited for ("response
    headers", "first token"...), `peer` who was being talked to."""
    return _Boundary(target, stage, peer)


class _Boundary:
    """`upstream_errors` as a class: every request passes it two to four times, and a
    generator-based context manager costs three times as much to enter and leave."""

    __slots__ = ("_peer", "_stage", "_target")

    def __init__(self, target: Target | None, stage: str, peer: str) -> None:
        self._target, self._stage, self._peer = target, stage, peer

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, UpstreamError):
            # Nothing escaped, a cancellation, or an UpstreamError raised inside: it passes
            # unchanged.
            return
        target, stage, peer = self._target, self._stage, self._peer
        try:
            raise exc  # what is not mapped below leaves as it came
        except TimeoutError as error:
            raise UpstreamTimeoutError(f"no answer in time ({stage})", target=target) from error
        except RedirectRefused as error:
            summary = f"{peer} answered with a redirect, which llmproxy never follows"
            raise UpstreamRefusedError(_for_client(summary, error), target=target) from error
        except DestinationRefused as error:
            summary = "destination refused by llmproxy's SSRF rules"
            raise UpstreamRefusedError(_for_client(summary, error), target=target) from error
        except HeaderRefused as error:
            summary = (
                "a header of this request cannot be sent (a control character, or unencodable)"
            )
            raise UpstreamRefusedError(_for_client(summary, error), target=target) from error
        except ConnectFailed as error:
            summary = f"cannot connect to {peer} ({_connect_failure(error.os_error)})"
            raise UpstreamRefusedError(_for_client(summary, error), target=target) from error
        except OSError as error:
            summary = f"connection to {peer} failed ({stage})"
            raise UpstreamConnectionError(_for_client(summary, error), target=target) from error


def _connect_failure(error: OSError) -> str:
    """Why connecting failed, without the address the exception's message holds."""
    if isinstance(error, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(error, ssl.SSLCertVerificationError):
        return "TLS: its certificate could not be verified"
    if isinstance(error, ssl.SSLError):
        return "TLS failed"
    return os.strerror(error.errno).lower() if error.errno else "failed"


def _for_client(summary: str, exc: BaseException) -> str:
    """What an attempt's detail says about a failure below HTTP. The exception's text names
    host names and internal addresses: it goes to the operator's log, and into the detail sent
    to clients only while the daemon logs at debug level (the operator is debugging)."""
    log.warning("%s: %s", summary, exc)
    return f"{summary}: {exc}" if log.isEnabledFor(logging.DEBUG) else summary
