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
from collections.abc import Iterator
from contextlib import contextmanager

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
    except RedirectRefused as exc:
        summary = f"{peer} answered with a redirect, which llmproxy never follows"
        raise UpstreamRefusedError(_for_client(summary, exc), target=target) from exc
    except DestinationRefused as exc:
        summary = "destination refused by llmproxy's SSRF rules"
        raise UpstreamRefusedError(_for_client(summary, exc), target=target) from exc
    except HeaderRefused as exc:
        summary = "a header of this request cannot be sent (a control character, or unencodable)"
        raise UpstreamRefusedError(_for_client(summary, exc), target=target) from exc
    except ConnectFailed as exc:
        summary = f"cannot connect to {peer} ({_connect_failure(exc.os_error)})"
        raise UpstreamRefusedError(_for_client(summary, exc), target=target) from exc
    except OSError as exc:
        summary = f"connection to {peer} failed ({stage})"
        raise UpstreamConnectionError(_for_client(summary, exc), target=target) from exc


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
