"""Client keys through the daemon in both dialects, constant-time matching, the loopback-only
rule without keys, what reaches an upstream (never the client's key), and JSON-only errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anthropic
import openai
import pytest
from conftest import Clients
from raw_http import get, post
from security_support import anthropic_error, call, openai_error
from support import CLIENT_KEY, Daemon, config_text
from typer.testing import CliRunner

from cli.main import app as cli_app
from proxy.config import parse_config
from proxy.errors import ConfigError
from proxy.security.auth import ClientKeys, check_bind
from proxy.simulate import SimulatedProvider, reply_text, run_simulated

StartDaemon = Callable[[str], Awaitable[Daemon]]
PROMPT = [{"role": "user", "content": "Hello there"}]
SECOND_KEY = "sk-second-client-key-0000"


def sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2"]),
    ]


def two_keys(text: str) -> str:
    return text.replace(
        f'api_key = "{CLIENT_KEY}"', f'api_keys = ["{CLIENT_KEY}", "{SECOND_KEY}"]', 1
    )


ROUTES = {"default": "zai,glm-5"}


async def test_sdks_with_right_and_wrong_keys(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(two_keys(config_text(running, ROUTES)))
        for key in (CLIENT_KEY, SECOND_KEY):
            done = await clients.openai(proxy, key).chat.completions.create(
                model="auto", messages=PROMPT
            )  # type: ignore[arg-type]
            assert done.choices[0].message.content == reply_text("zai", "glm-5", "Hello there")
            message = await clients.anthropic(proxy, key).messages.create(
                model="auto", max_tokens=50, messages=PROMPT
            )  # type: ignore[arg-type]
            assert message.content[0].type == "text"
        with pytest.raises(openai.AuthenticationError) as oa:
            await clients.openai(proxy, "sk-wrong").chat.completions.create(
                model="auto", messages=PROMPT
            )  # type: ignore[arg-type]
        with pytest.raises(anthropic.AuthenticationError) as an:
            await clients.anthropic(proxy, CLIENT_KEY[:-1]).messages.create(
                model="auto", max_tokens=50, messages=PROMPT
            )  # type: ignore[arg-type]
        assert [r.outcome for r in running["zai"].requests] == ["ok"] * 4
    assert oa.value.status_code == 401
    assert oa.value.body == {
        "type": "authentication_error",
        "message": "invalid or missing API key",
        "param": None,
        "code": None,
    }
    assert an.value.status_code == 401
    assert an.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid or missing API key"},
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": CLIENT_KEY}, 200),
        ({"authorization": f"Bearer {CLIENT_KEY}"}, 200),
        ({"authorization": f"bearer {SECOND_KEY}"}, 200),
        ({"authorization": CLIENT_KEY}, 200),
        ({"x-api-key": "sk-ant-real-anthropic-key", "authorization": f"Bearer {CLIENT_KEY}"}, 200),
        ({"x-api-key": "wrong"}, 401),
        ({"authorization": "Bearer"}, 401),
        ({"authorization": f"Basic {CLIENT_KEY}"}, 401),
        ({"x-api-key": CLIENT_KEY + " "}, 200),
        ({"x-api-key": CLIENT_KEY + "x"}, 401),
        ({"x-api-key": CLIENT_KEY[:8]}, 401),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_raw_credentials(
    daemon: StartDaemon, headers: dict[str, str], status: int, path: str
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(two_keys(config_text(running, ROUTES)))
        body = {"model": "auto", "max_tokens": 20, "messages": PROMPT}
        response = await post(proxy.url + path, body, headers=headers, key=None)
    assert response.status == status, response.body
    if status == 401:
        assert response.content_type == "application/json"
        shaped = anthropic_error if path == "/v1/messages" else openai_error
        assert shaped(response)["type"] == "authentication_error"


async def test_models_and_count_tokens_need_the_key_health_does_not(daemon: StartDaemon) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(config_text(running, ROUTES))
        assert (await get(proxy.url + "/v1/models", key="nope")).status == 401
        assert (await get(proxy.url + "/v1/models")).status == 200
        counted = await post(
            proxy.url + "/v1/messages/count_tokens",
            {"model": "auto", "messages": PROMPT},
            key="nope",
        )
        assert counted.status == 401
        assert (await call("GET", proxy.url + "/health")).status == 200


def test_every_key_is_compared_every_time() -> None:
    keys = ClientKeys(["first-key-aaaaaaaa", "second-key-bbbbbbb", "third-key-ccccccccc"])
    calls: list[tuple[bytes, bytes]] = []

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    assert keys.match(["first-key-aaaaaaaa"], recording) == "key-1"
    assert len(calls) == 3  # no early exit on the first key's match
    calls.clear()
    assert keys.match(["third-key-ccccccccc"], recording) == "key-3"
    assert len(calls) == 3
    calls.clear()
    assert keys.match(["nope", "second-key-bbbbbbb"], recording) == "key-2"
    assert len(calls) == 6
    calls.clear()
    assert keys.match(["first-key-aaaaaaa"], recording) is None
    assert len(calls) == 3
    # digests are compared, so every comparison sees equal lengths whatever the key's length
    assert {len(a) for a, _ in calls} == {len(b) for _, b in calls} == {32}
    assert ClientKeys([]).match([CLIENT_KEY]) is None


NO_KEY = (
    '[router]\ndefault = "p,m"\n[[providers]]\nname = "p"\n'
    'api_base_url = "https://api.example.com/v1"\nmodels = ["m"]\n'
)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]
)
def test_loopback_binds_need_no_key(host: str) -> None:
    check_bind(parse_config(NO_KEY, {}), host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.168.1.5", "10.0.0.1", "myhost.example", "fd00::5"]
)
def test_other_binds_need_a_key(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_bind(parse_config(NO_KEY, {}), host)
    assert info.value.key == "proxy.host"
    assert "without a client key" in info.value.message
    check_bind(parse_config(f'[proxy]\napi_key = "{CLIENT_KEY}"\n' + NO_KEY, {}), host)


def test_serve_refuses_to_listen_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nhost = "0.0.0.0"\n' + NO_KEY)
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "refusing to listen on '0.0.0.0' without a client key" in result.output
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(config), "--host", "::"])
    assert result.exit_code == 2


HOSTILE_HEADERS = {
    "authorization": f"Bearer {CLIENT_KEY}",
    "connection": "keep-alive, x-drop-me",
    "x-drop-me": "1",
    "keep-alive": "timeout=5",
    "proxy-authorization": "Basic c2VjcmV0",
    "te": "trailers",
    "upgrade": "websocket",
    "cookie": "session=abc",
    "x-forwarded-for": "10.0.0.1",
    "forwarded": "for=10.0.0.1",
    "host-override": "evil.example",
    "x-custom": "client-data",
    "openai-organization": "org-client",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "interleaved-thinking-2025-05-14",
}
ALLOWED_UPSTREAM = {
    "host",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "user-agent",
    "authorization",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
}


@pytest.mark.parametrize(
    ("route", "path", "sim"),
    [
        ("zai,glm-5", "/v1/chat/completions", "zai"),
        ("zai,glm-5", "/v1/messages", "zai"),
        ("minimax,MiniMax-M2", "/v1/messages", "minimax"),
        ("minimax,MiniMax-M2", "/v1/chat/completions", "minimax"),
    ],
)
async def test_only_our_headers_reach_the_upstream(
    daemon: StartDaemon, route: str, path: str, sim: str
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(config_text(running, {"default": route}))
        body = {"model": "auto", "max_tokens": 20, "messages": PROMPT}
        response = await post(proxy.url + path, body, headers=HOSTILE_HEADERS, key=None)
        assert response.status == 200, response.body
        (record,) = running[sim].requests
    assert set(record.headers) <= ALLOWED_UPSTREAM, set(record.headers) - ALLOWED_UPSTREAM
    assert all(CLIENT_KEY not in value for value in record.headers.values())
    assert "client-data" not in record.headers.values()
    same_format = (path == "/v1/messages") == (sim == "minimax")
    if same_format and sim == "minimax":
        assert record.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    else:
        assert "anthropic-beta" not in record.headers


@pytest.mark.parametrize(
    ("method", "path", "status", "dialect"),
    [
        ("GET", "/nope", 404, "openai"),
        ("GET", "/v1/nope", 404, "openai"),
        ("POST", "/v1/messages/nope", 404, "anthropic"),
        ("GET", "/v1/chat/completions", 405, "openai"),
        ("DELETE", "/v1/messages", 405, "anthropic"),
        ("GET", "/v0/management/config", 404, "openai"),  # off unless enabled
    ],
)
async def test_unknown_routes_answer_json_in_the_dialect(
    daemon: StartDaemon, method: str, path: str, status: int, dialect: str
) -> None:
    async with run_simulated(sims()) as running:
        proxy = await daemon(config_text(running, ROUTES))
        response = await call(
            method, proxy.url + path, headers={"accept": "text/html", "x-api-key": CLIENT_KEY}
        )
    assert response.status == status
    assert response.content_type == "application/json"
    assert b"<html" not in response.body.lower()
    error = anthropic_error(response) if dialect == "anthropic" else openai_error(response)
    assert error["type"] == "not_found_error" if status == 404 else error["message"]
    headers = {k.lower(): v for k, v in response.headers.items()}
    if status == 405:
        assert "allow" in headers
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"host": "localhost:3456"}, 200),
        ({"host": "[::1]:3456"}, 200),
        ({"origin": "http://localhost:5173"}, 200),
        ({"origin": "http://127.0.0.1:8080"}, 200),
        ({"host": "attacker.example:3456"}, 403),  # DNS rebinding: the page's own name
        ({"host": "192.0.2.2:3456"}, 403),
        ({"origin": "https://attacker.example"}, 403),  # cross-site form post
        ({"origin": "null"}, 403),
    ],
)
async def test_without_keys_only_local_requests_are_served(
    daemon: StartDaemon, headers: dict[str, str], status: int
) -> None:
    async with run_simulated(sims()) as running:
        text = config_text(running, ROUTES).replace(f'api_key = "{CLIENT_KEY}"', "")
        proxy = await daemon(text)
        body = {"model": "auto", "messages": PROMPT}
        response = await post(
            proxy.url + "/v1/chat/completions",
            body,
            headers={"content-type": "text/plain", **headers},
            key=None,
        )
    assert response.status == status, response.body
    if status == 403:
        assert openai_error(response)["code"] == "not_local"
        assert running["zai"].requests == ()
