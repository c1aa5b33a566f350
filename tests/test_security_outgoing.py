"""One guarded session for every outgoing request: the daemon, the CLI's in-process paths
(`chat --in-process`, `chat` with no daemon, `route test --send`), `providers status --probe`,
`providers refresh`, the codex token refresh. Each refuses a host name that resolves to this
machine, and none follows a redirect (no key travels on, nothing fetched comes back)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cli_support import Cli, serving
from codex_sims import seed_store
from conftest import Clients
from support import CLIENT_KEY, Daemon, config_text

from proxy.security.ssrf import Reach, classify_address
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.simulate.deployment import LoopThread

ROUTES = {"default": "zai,glm-5"}
StartDaemon = Callable[[str], Awaitable[Daemon]]


def _local_name() -> str | None:
    """This machine's host name when it resolves only to non-public addresses (loopback, or a
    container's private address): a name the SSRF rules cannot judge by its spelling."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return None
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    if addresses and all(classify_address(a).reach is not Reach.PUBLIC for a in addresses):
        return name
    return None


LOCAL_NAME = _local_name()
needs_local_name = pytest.mark.skipif(
    LOCAL_NAME is None, reason="this machine's host name does not resolve to a local address"
)


def behind_local_name(text: str) -> str:
    """The config with the simulators named by this machine's host name and no loopback
    allowance: what a user gets by writing `http://<hostname>:port/v1`."""
    assert LOCAL_NAME is not None
    text = text.replace("allow_localhost = true", "")
    return re.sub(
        r'api_base_url = "http://127\.0\.0\.1:', f'api_base_url = "http://{LOCAL_NAME}:', text
    )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def zai() -> list[SimulatedProvider]:
    return [SimulatedProvider("zai", "openai", ["glm-5"])]


@needs_local_name
@pytest.mark.parametrize(
    "command",
    [("chat", "--in-process", "Hi"), ("chat", "Hi"), ("route", "test", "auto", "--send")],
    ids=["chat-in-process", "chat-no-daemon", "route-test-send"],
)
def test_cli_in_process_refuses_a_name_that_resolves_locally(
    cli: Cli, command: tuple[str, ...]
) -> None:
    with serving(zai(), ROUTES, daemon=False) as running:
        config = cli.config(behind_local_name(running.config))
        result = cli(*command, "--config", str(config))
        reached = running.sims["zai"].requests
    assert reached == ()
    assert "destination refused by llmproxy's SSRF rules" in result.output
    assert result.exit_code != 0 or "failed" in result.stdout


@needs_local_name
def test_probe_refuses_a_name_that_resolves_locally(cli: Cli) -> None:
    with serving(zai(), ROUTES, daemon=False) as running:
        config = cli.config(behind_local_name(running.config))
        result = cli("providers", "status", "--probe", "--json", "--config", str(config))
        reached = running.sims["zai"].requests
    assert reached == ()
    assert result.exit_code == 1
    probe = orjson.loads(result.stdout)["probes"][0]
    assert probe["verdict"] == "down" and "SSRF" in probe["detail"]


@needs_local_name
def test_refresh_refuses_a_name_that_resolves_locally(cli: Cli, tmp_path: Path) -> None:
    with serving(zai(), ROUTES, daemon=False) as running:
        config = cli.config(behind_local_name(running.config))
        result = cli(
            "providers",
            "refresh",
            "--json",
            "--config",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
        reached = running.sims["zai"].requests
    assert reached == ()
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)["providers"][0]
    assert report["ok"] is False and "resolves to" in report["error"]


# --- redirects ----------------------------------------------------------------------------------


@dataclass
class Redirector:
    """A server that answers every request with a 302 to `inside`, a second server that
    records what reaches it and would answer with a secret."""

    outer: TestServer
    inner: TestServer
    hits: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.outer.make_url("")).rstrip("/")


@contextlib.asynccontextmanager
async def redirecting() -> AsyncIterator[Redirector]:
    hits: list[dict[str, str]] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(dict(request.headers))
        return web.json_response({"access_token": "stolen", "secret": "internal data"})

    inner_app = web.Application()
    inner_app.router.add_route("*", "/{tail:.*}", internal)
    inner = TestServer(inner_app, host="127.0.0.1")
    await inner.start_server()
    # `localhost` is not the host any provider allows, so the target is a refused address.
    target = f"http://localhost:{inner.port}/internal"

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    outer_app = web.Application()
    outer_app.router.add_route("*", "/{tail:.*}", redirect)
    outer = TestServer(outer_app, host="127.0.0.1")
    await outer.start_server()
    try:
        yield Redirector(outer, inner, hits)
    finally:
        await outer.close()
        await inner.close()


@pytest.fixture
async def redirector() -> AsyncIterator[Redirector]:
    async with redirecting() as made:
        yield made


@pytest.fixture
def redirector_thread() -> Iterator[Redirector]:
    """The redirector in a background loop, for CLI commands (which run their own loop)."""
    with LoopThread(redirecting) as made:
        yield made


def _redirecting_config(base_url: str) -> str:
    return (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "p,m"\n'
        f'[[providers]]\nname = "p"\napi_base_url = "{base_url}"\napi_key = "sk-upstream-1"\n'
        'models = ["m"]\nformat = "anthropic"\nallow_private_network = true\n'
    )


def test_refresh_never_follows_a_redirect_with_the_key(
    cli: Cli, tmp_path: Path, redirector_thread: Redirector
) -> None:
    config = cli.config(_redirecting_config(redirector_thread.url + "/v1"))
    result = cli(
        "providers",
        "refresh",
        "--json",
        "--config",
        str(config),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)["providers"][0]
    assert "redirect" in report["error"]
    assert redirector_thread.hits == []  # x-api-key never reached the second host


def test_probe_never_follows_a_redirect(cli: Cli, redirector_thread: Redirector) -> None:
    config = cli.config(_redirecting_config(redirector_thread.url + "/v1"))
    result = cli("providers", "status", "--probe", "--json", "--config", str(config))
    assert result.exit_code == 1
    assert redirector_thread.hits == []


async def test_the_daemon_reports_a_provider_redirect_as_one(
    clients: Clients, daemon: StartDaemon, redirector: Redirector
) -> None:
    proxy = await daemon(_redirecting_config(redirector.url))
    with pytest.raises(openai.APIStatusError) as failed:
        await clients.openai(proxy).chat.completions.create(
            model="p,m", messages=[{"role": "user", "content": "Hello"}]
        )
    body = failed.value.response.text
    assert "answered with a redirect, which llmproxy never follows" in body
    assert "SSRF" not in body
    assert redirector.hits == []


async def test_codex_refresh_never_follows_a_redirect(
    clients: Clients, daemon: StartDaemon, tmp_path: Path, redirector: Redirector
) -> None:
    codex = SimulatedProvider("codex", "codex", ["gpt-5.2"])
    backup = SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"])
    async with run_simulated([codex, backup]) as sims:
        store = seed_store(sims["codex"], tmp_path / "auth.json", expires_in=-60)
        extra = {"codex": f'auth_file = "{store}"\ntoken_endpoint = "{redirector.url}/oauth/token"'}
        proxy = await daemon(
            config_text(
                sims, {"default": "codex,gpt-5.2|cerebras,llama-3.3-70b"}, provider_extra=extra
            )
        )
        raw = await clients.openai(proxy).chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
    assert raw.parse().choices[0].message.content  # the backup answered
    assert raw.headers["x-llmproxy-attempts"].startswith("codex,gpt-5.2=")
    assert redirector.hits == []
    assert sims["codex"].account.refreshes == 0


async def test_codex_refresh_never_echoes_what_the_endpoint_sent(
    clients: Clients, daemon: StartDaemon, tmp_path: Path
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>internal admin page: db password hunter2")

    app = web.Application()
    app.router.add_post("/oauth/token", page)
    endpoint = TestServer(app, host="127.0.0.1")
    await endpoint.start_server()
    codex = SimulatedProvider("codex", "codex", ["gpt-5.2"])
    try:
        async with run_simulated([codex]) as sims:
            store = seed_store(sims["codex"], tmp_path / "auth.json", expires_in=-60)
            extra = {
                "codex": f'auth_file = "{store}"\n'
                f'token_endpoint = "{endpoint.make_url("/oauth/token")}"'
            }
            proxy = await daemon(
                config_text(sims, {"default": "codex,gpt-5.2"}, provider_extra=extra)
            )
            with pytest.raises(openai.APIStatusError) as failed:
                await clients.openai(proxy).chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "Hello"}]
                )
    finally:
        await endpoint.close()
    body = failed.value.response.text
    assert "refreshing the ChatGPT sign-in failed (500" in body
    assert "hunter2" not in body and "admin page" not in body
