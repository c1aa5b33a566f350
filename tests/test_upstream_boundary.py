"""`providers.boundary.upstream_errors`: the one place aiohttp's and the socket layer's
exceptions become llmproxy's errors. Real failures end to end are in test_failover.py and
test_daemon_fallback.py; this pins the table itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import openai
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from proxy.providers.boundary import upstream_errors
from proxy.security.ssrf import DestinationRefused
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import ErrorClass, Target

ZAI = Target("zai", "glm-5")
StartDaemon = Callable[[str], Awaitable[Daemon]]


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


async def test_a_key_with_a_line_break_is_refused_before_aiohttp_sees_it(
    clients: Clients, daemon: StartDaemon
) -> None:
    """aiohttp refuses a header holding CR or LF with a bare ValueError; the transport checks
    the headers first, so the client gets the configuration's fault in its own dialect, the
    provider is never called, and the boundary stays the one place that maps aiohttp."""
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        text = config_text(sims, {"default": "zai,glm-5"}).replace(
            'api_key = "sim-key"', 'api_key = "sim-key\\nX-Injected: 1"'
        )
        proxy = await daemon(text)
        with pytest.raises(openai.APIStatusError) as raised:
            await clients.openai(proxy).chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
        assert not sims["zai"].requests
    assert raised.value.status_code == 502
    assert raised.value.response.headers["x-llmproxy-attempts"] == "zai,glm-5=auth_error"
    (attempt,) = raised.value.response.json()["error"]["attempts"]
    assert "line break (CR/LF)" in attempt["detail"]
