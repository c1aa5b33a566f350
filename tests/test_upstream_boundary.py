"""`providers.boundary.upstream_errors`: the one place the outgoing client's and the socket
layer's exceptions become llmproxy's errors. Real failures end to end are in test_failover.py and
test_daemon_fallback.py; this pins the table itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from codex_sims import codex_keys
from conftest import Clients
from support import CLIENT_KEY, Daemon, config_text

from proxy.codex_auth import parse_codex_auth
from proxy.config import parse_config
from proxy.errors import (
    ConfigError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from proxy.providers.boundary import upstream_errors
from proxy.security.http1 import (
    BadResponse,
    ConnectFailed,
    Disconnected,
    RedirectRefused,
)
from proxy.security.http1_wire import HeaderRefused
from proxy.security.ssrf import DestinationRefused
from proxy.simulate import SimulatedProvider, reply_text, run_simulated
from proxy.types import ErrorClass, Target

ZAI = Target("zai", "glm-5")
StartDaemon = Callable[[str], Awaitable[Daemon]]


def _refused_connect() -> ConnectFailed:
    refused = ConnectionRefusedError(111, "Connection refused")
    return ConnectFailed(f"cannot connect to 127.0.0.1:9: {refused}", refused)


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
        (
            RedirectRefused("api.example answered 302"),
            UpstreamRefusedError,
            ErrorClass.CONNECTION,
            "answered with a redirect",
        ),
        (
            HeaderRefused("x-title"),
            UpstreamRefusedError,
            ErrorClass.CONNECTION,
            "cannot be sent",
        ),
        (_refused_connect(), UpstreamRefusedError, ErrorClass.CONNECTION, "cannot connect"),
        (
            Disconnected("closed mid-answer"),
            UpstreamConnectionError,
            ErrorClass.CONNECTION,
            "failed (first token)",
        ),
        (
            BadResponse("not HTTP/1.1"),
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


# A header holding a control character other than tab cannot be sent (aiohttp's client raised a
# bare ValueError, which reached clients as a 500; the outgoing client raises HeaderRefused):
# every value that becomes a header is checked where it is read, so the transport never meets
# one.
_ZAI_CONFIG = f"""
[proxy]
api_key = "{CLIENT_KEY}"
[router]
default = "zai,glm-5"
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
api_key = "sim-key"
models = ["glm-5"]
"""
UNSENDABLE = ["\u0001", "\u007f", "\u000b", "\n", "\r", "\u0000"]


@pytest.mark.parametrize("char", UNSENDABLE, ids=repr)
@pytest.mark.parametrize(
    ("written", "rewritten", "key"),
    [
        (
            'models = ["glm-5"]',
            'models = ["glm-5"]\nheaders = { X-Title = "$VALUE" }',
            "providers[0].headers.X-Title",
        ),
        (f'api_key = "{CLIENT_KEY}"', 'api_key = "$VALUE"', "proxy.api_key"),
        (f'api_key = "{CLIENT_KEY}"', 'api_keys = ["$VALUE"]', "proxy.api_keys[0]"),
    ],
    ids=["provider header", "client key", "client keys"],
)
def test_a_value_aiohttp_cannot_send_as_a_header_is_a_config_error(
    written: str, rewritten: str, key: str, char: str
) -> None:
    text = _ZAI_CONFIG
    assert written in text
    with pytest.raises(ConfigError) as refused:
        parse_config(text.replace(written, rewritten, 1), env={"VALUE": f"secret{char}tail"})
    assert refused.value.key == key
    assert f"control character (U+{ord(char):04X})" in refused.value.message
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("char", ["\u0001", "\u007f", "\u000b"], ids=repr)
async def test_a_provider_key_aiohttp_cannot_send_fails_over(
    clients: Clients, daemon: StartDaemon, char: str
) -> None:
    """One broken target never aborts the chain (README): the key's fault was found when the
    config was read, the provider is never called, the next one answers; it was a 500."""
    sims_wanted = [
        SimulatedProvider(n, "openai", [m]) for n, m in (("zai", "glm-5"), ("groq", "k2"))
    ]
    async with run_simulated(sims_wanted) as sims:
        text = config_text(sims, {"default": "zai,glm-5|groq,k2"})
        escaped = f"sim-key\\u{ord(char):04x}x"  # TOML's escape: the key holds `char`
        proxy = await daemon(text.replace('api_key = "sim-key"', f'api_key = "{escaped}"', 1))
        assert proxy.config.providers[0].api_key == f"sim-key{char}x"
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
        assert not sims["zai"].requests
    assert raw.headers["x-llmproxy-attempts"] == "zai,glm-5=auth_error;groq,k2=ok"
    assert raw.parse().choices[0].message.content == reply_text("groq", "k2", "hi")


def test_a_tab_in_a_header_value_is_sent() -> None:
    text = _ZAI_CONFIG.replace(
        'models = ["glm-5"]', 'models = ["glm-5"]\nheaders = { X-Title = "a\\tb" }'
    )
    assert parse_config(text, env={}).providers[0].headers["X-Title"] == "a\tb"


async def test_a_sign_in_aiohttp_cannot_send_fails_over(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    """The account id of a token store goes into a header on every request: the store is
    refused when read (unavailable), the next target answers; it was a 500 before."""
    codex = SimulatedProvider("codex", "codex", ["gpt-5.2"])
    async with run_simulated([codex, SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        store = tmp_path / "auth.json"
        signed_in = sims["codex"].account.codex_auth_json()
        signed_in["tokens"]["account_id"] = "acct\u0001x"
        store.write_bytes(orjson.dumps(signed_in))
        extra = {"codex": codex_keys(sims["codex"], store)}
        proxy = await daemon(
            config_text(sims, {"default": "codex,gpt-5.2|zai,glm-5"}, provider_extra=extra)
        )
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
        assert not sims["codex"].requests
    assert raw.headers["x-llmproxy-attempts"] == "codex,gpt-5.2=unavailable;zai,glm-5=ok"
    assert raw.parse().choices[0].message.content == reply_text("zai", "glm-5", "hi")


def test_a_sign_in_aiohttp_cannot_send_is_named_when_imported() -> None:
    signed_in = SimulatedProvider("codex", "codex", ["gpt-5.2"]).account.codex_auth_json()
    signed_in["tokens"]["access_token"] += "\u007f"
    with pytest.raises(ConfigError) as refused:
        parse_codex_auth(signed_in)
    assert refused.value.key == "tokens.access_token"
    assert "control character (U+007F)" in refused.value.message


async def _messages_with_beta(url: str, beta: bytes) -> bytes:
    """The daemon's raw answer to a `/v1/messages` request whose `anthropic-beta` header is
    `beta` as bytes (a client library would refuse to send what these tests send)."""
    host, port = url.removeprefix("http://").split(":")
    body = b'{"model":"auto","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"x-api-key: {CLIENT_KEY}\r\n".encode()
        + b"anthropic-beta: "
        + beta
        + f"\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_client_header_aiohttp_cannot_send_never_reaches_a_provider(
    daemon: StartDaemon,
) -> None:
    """`anthropic-beta` is forwarded to a same-format provider: aiohttp's server parser
    refuses a control character in it before any handler runs (400)."""
    async with run_simulated([SimulatedProvider("kimi", "anthropic", ["k2"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "kimi,k2"}))
        answer = await _messages_with_beta(proxy.url, b"a\x01b")
        assert not sims["kimi"].requests
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400"
    assert b"Invalid header value char" in rest


async def test_a_client_header_byte_that_is_not_utf_8_reaches_the_provider_as_sent(
    daemon: StartDaemon,
) -> None:
    """aiohttp's server hands the byte \\xff over as a surrogate; the outgoing client sends it
    as the byte it was (it once failed to encode it: a 500)."""
    async with run_simulated([SimulatedProvider("kimi", "anthropic", ["k2"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "kimi,k2"}))
        answer = await _messages_with_beta(proxy.url, b"beta\xff")
        [received] = sims["kimi"].requests
    assert answer.partition(b"\r\n")[0].split()[1] == b"200", answer[:300]
    assert received.headers["anthropic-beta"].encode("utf-8", "surrogateescape") == b"beta\xff"
