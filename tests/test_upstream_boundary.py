"""`providers.boundary.upstream_errors`: the one place aiohttp's and the socket layer's
exceptions become llmproxy's errors. Real failures end to end are in test_failover.py and
test_daemon_fallback.py; this pins the table itself."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from proxy.providers.boundary import upstream_errors
from proxy.security.ssrf import DestinationRefused
from proxy.types import ErrorClass, Target

ZAI = Target("zai", "glm-5")


def _refused_connector() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("raised", "expected", "error_class", "words"),
    [
        (
            TimeoutError(),
            UpstreamTimeoutError,
            ErrorClass.TIMEOUT,
            "no answer in time (first token)",
        ),
        (
            DestinationRefused("10.0.0.1 is private"),
            UpstreamRefusedError,
            ErrorClass.CONNECTION,
            "destination refused",
        ),
        (_refused_connector(), UpstreamRefusedError, ErrorClass.CONNECTION, "cannot connect"),
        (
            aiohttp.ServerDisconnectedError(),
            UpstreamConnectionError,
            ErrorClass.CONNECTION,
            "failed (first token)",
        ),
        (
            ConnectionResetError(104, "reset"),
            UpstreamConnectionError,
            ErrorClass.CONNECTION,
            "failed (first token)",
        ),
    ],
)
def test_lower_layer_exceptions_become_upstream_errors(
    raised: BaseException, expected: type[UpstreamError], error_class: ErrorClass, words: str
) -> None:
    with pytest.raises(UpstreamError) as caught, upstream_errors(ZAI, "first token"):
        raise raised
    assert type(caught.value) is expected
    assert caught.value.error_class is error_class
    assert caught.value.target == ZAI and words in caught.value.message
    assert caught.value.__cause__ is raised


def test_our_own_errors_pass_unchanged() -> None:
    ours = UpstreamStatusError("429", target=ZAI, status=429, error_class=ErrorClass.RATE_LIMITED)
    with pytest.raises(UpstreamStatusError) as caught, upstream_errors(ZAI, "response"):
        raise ours
    assert caught.value is ours
