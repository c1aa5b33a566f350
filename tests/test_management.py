"""The management API through the daemon: peer and secret checks, redacted reads, live and
persisted changes that keep the file's comments and `$VAR` references, reload, log level."""

from __future__ import annotations

import logging
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from raw_http import get, post
from security_support import Apps, call, openai_error
from support import CLIENT_KEY

from proxy.config import load_config, parse_config
from proxy.errors import ConfigError
from proxy.simulate import SimulatedProvider, reply_text, run_simulated

SECRET = "mgmt-secret-0123456789abcdef"
ZAI_KEY = "zai-real-key-must-stay-off-disk"
CEREBRAS_KEY = "cerebras-real-key-also-secret"
ENV = {"ZAI_API_KEY": ZAI_KEY, "CEREBRAS_API_KEY": CEREBRAS_KEY, "LLMPROXY_MGMT_KEY": SECRET}
AUTH = {"x-management-key": SECRET}
# the operator lets the API name this variable in any provider's secrets
LISTED = 'secret_variables = ["CEREBRAS_API_KEY"]'

PROMPT = [{"role": "user", "content": "Hello there"}]


def config_file(zai_url: str, management: str = "") -> str:
    return f"""# llmproxy test config: keep this comment
[proxy]
api_key = "{CLIENT_KEY}"   # the client key

[security.ssrf_protection]
allow_localhost = true     # simulators listen on loopback

[management]
enabled = true
secret_key = "$LLMPROXY_MGMT_KEY"
{management}

[router]
default = "zai,glm-5"      # primary route

# Z.ai: its key comes from the environment
[[providers]]
name = "zai"
api_base_url = "{zai_url}"
api_key = "$ZAI_API_KEY"   # never expanded on disk
models = ["glm-5"]
"""


def sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("zai", "openai", ["glm-5"], api_key=ZAI_KEY),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"], api_key=CEREBRAS_KEY),
    ]


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


@pytest.fixture
def llmproxy_level() -> Iterator[None]:
    logger = logging.getLogger("llmproxy")
    level = logger.level
    yield
    logger.setLevel(level)


class Running:
    def __init__(self, url: str, path: Path, sims: dict[str, SimulatedProvider]) -> None:
        self.url, self.path, self.sims = url, path, sims

    async def mgmt(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        response = await call(
            method,
            f"{self.url}/v0/management{path}",
            json=json,
            headers=AUTH if headers is None else headers,
        )
        return response


@pytest.fixture
async def running(apps: Apps, tmp_path: Path) -> AsyncIterator[Running]:
    async with run_simulated(sims()) as started:
        path = tmp_path / "config.toml"
        path.write_text(config_file(started["zai"].base_url, LISTED))
        path.chmod(0o644)
        proxy = await apps.start(load_config(path, ENV), env=ENV)
        yield Running(proxy.url, path, started)


def test_enabled_without_secret_refuses_to_start() -> None:
    text = config_file("https://api.z.ai/v1").replace('secret_key = "$LLMPROXY_MGMT_KEY"', "")
    with pytest.raises(ConfigError) as info:
        parse_config(text, ENV)
    assert info.value.key == "management.secret_key"
    assert "required when [management] enabled = true" in info.value.message
    empty = config_file("https://api.z.ai/v1").replace("$LLMPROXY_MGMT_KEY", "$EMPTY")
    with pytest.raises(ConfigError):
        parse_config(empty, {**ENV, "EMPTY": ""})


async def test_secret_is_required(running: Running) -> None:
    for headers in (
        {},
        {"x-management-key": "wrong"},
        {"x-management-key": SECRET[:-1]},
        {"authorization": f"Bearer {SECRET}x"},
        {"x-api-key": CLIENT_KEY},
        {"authorization": f"Bearer {CLIENT_KEY}"},
    ):
        response = await running.mgmt("GET", "/config", headers=headers)
        assert response.status == 401, headers
        assert openai_error(response)["code"] == "invalid_management_key"
    assert (await running.mgmt("GET", "/config")).status == 200
    bearer = await running.mgmt("GET", "/health", headers={"authorization": f"Bearer {SECRET}"})
    assert bearer.status == 200
    assert (await running.mgmt("GET", "/nothing-here", headers={})).status == 401


@pytest.mark.parametrize(
    ("peer", "allow_remote", "status"),
    [
        ("203.0.113.9", False, 403),
        ("192.168.1.20", False, 403),
        ("2001:db8::7", False, 403),
        ("127.0.0.1", False, 200),
        ("::1", False, 200),
        ("::ffff:127.0.0.1", False, 200),
        ("203.0.113.9", True, 200),
    ],
)
async def test_remote_peers_get_403(
    apps: Apps, tmp_path: Path, peer: str, allow_remote: bool, status: int
) -> None:
    path = tmp_path / "config.toml"
    remote = "allow_remote = true" if allow_remote else ""
    path.write_text(config_file("https://api.z.ai/api/paas/v4", remote))
    proxy = await apps.start(load_config(path, ENV), env=ENV, peer=peer)
    response = await call(
        "PUT", proxy.url + "/v0/management/logs/level", json={"level": "x"}, headers=AUTH
    )
    if status == 403:
        assert response.status == 403
        assert openai_error(response)["type"] == "permission_error"
    else:
        assert response.status == 400  # reached the handler: the level is invalid
    wrong = await call("GET", proxy.url + "/v0/management/config", headers={})
    assert wrong.status == (403 if status == 403 else 401)  # the peer is checked first


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.skipif(
    non_loopback_address() is None, reason="this machine has no non-loopback IPv4 address"
)
async def test_remote_peer_gets_403_on_a_daemon_listening_everywhere(
    apps: Apps, tmp_path: Path
) -> None:
    address = non_loopback_address()
    assert address is not None
    path = tmp_path / "config.toml"
    path.write_text(config_file("https://api.z.ai/api/paas/v4"))
    proxy = await apps.start(load_config(path, ENV), env=ENV, host="0.0.0.0")
    port = proxy.server.port
    remote = await call("GET", f"http://{address}:{port}/v0/management/config", headers=AUTH)
    assert remote.status == 403
    local = await call("GET", f"http://127.0.0.1:{port}/v0/management/config", headers=AUTH)
    assert local.status == 200


async def test_config_is_redacted(running: Running) -> None:
    response = await running.mgmt("GET", "/config")
    assert response.status == 200
    for secret in (ZAI_KEY, SECRET, CLIENT_KEY):
        assert secret.encode() not in response.body
    config = response.json()["config"]
    assert config["proxy"]["api_keys"] == ["[REDACTED]"]
    assert config["providers"][0]["api_key"] == "[REDACTED]"
    assert config["management"] == {
        "enabled": True,
        "allow_remote": False,
        "secret_key": "[REDACTED]",
        "secret_variables": ["CEREBRAS_API_KEY"],
    }
    assert config["router"]["default"] == "zai,glm-5"
    assert response.headers["Cache-Control"] == "no-store"


async def test_changes_are_live_and_persisted_with_comments_and_var_references(
    running: Running,
) -> None:
    original = running.path.read_text()
    cerebras = running.sims["cerebras"]
    added = await running.mgmt(
        "PUT",
        "/providers/cerebras",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["llama-3.3-70b"],
            "timeouts": {"connect_ms": 2000},
        },
    )
    assert added.status == 200, added.body
    assert added.json()["notes"] == ["provider 'cerebras' added"]
    routed = await running.mgmt(
        "PUT", "/router", {"default": "cerebras,llama-3.3-70b|zai,glm-5", "think": "zai,glm-5"}
    )
    assert routed.status == 200, routed.body
    assert routed.json()["config"]["router"]["think"] == "zai,glm-5"

    text = running.path.read_text()
    for comment in (
        "# llmproxy test config: keep this comment",
        "# the client key",
        "# primary route",
        "# Z.ai: its key comes from the environment",
        "# never expanded on disk",
        "# simulators listen on loopback",
    ):
        assert comment in text
    assert 'api_key = "$ZAI_API_KEY"' in text and 'api_key = "$CEREBRAS_API_KEY"' in text
    assert 'secret_key = "$LLMPROXY_MGMT_KEY"' in text
    for secret in (ZAI_KEY, CEREBRAS_KEY, SECRET):
        assert secret not in text
    assert stat.S_IMODE(running.path.stat().st_mode) == 0o600
    assert text.startswith(original.split("[router]")[0])  # untouched above the edit
    assert not list(running.path.parent.glob(".config.toml.*"))  # no temp file left behind
    reloaded = load_config(running.path, ENV)
    assert [p.name for p in reloaded.providers] == ["zai", "cerebras"]
    assert reloaded.provider("cerebras").api_key == CEREBRAS_KEY  # type: ignore[union-attr]

    models = await get(running.url + "/v1/models")
    assert "cerebras,llama-3.3-70b" in [m["id"] for m in models.json()["data"]]
    health = (await running.mgmt("GET", "/health")).json()
    assert health["providers"] == ["zai", "cerebras"]


async def test_routing_follows_a_live_change(running: Running) -> None:
    cerebras = running.sims["cerebras"]
    await running.mgmt(
        "PUT",
        "/providers/cerebras",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["llama-3.3-70b"],
        },
    )
    await running.mgmt("PUT", "/router", {"default": "cerebras,llama-3.3-70b"})
    answer = await post(running.url + "/v1/chat/completions", {"model": "auto", "messages": PROMPT})
    content = answer.json()["choices"][0]["message"]["content"]
    assert content == reply_text("cerebras", "llama-3.3-70b", "Hello there")


async def test_redacted_secret_sent_back_keeps_the_reference(running: Running) -> None:
    provider = (await running.mgmt("GET", "/config")).json()["config"]["providers"][0]
    assert provider["api_key"] == "[REDACTED]"
    change = {"api_key": provider["api_key"], "models": ["glm-5", "glm-4.7"]}
    response = await running.mgmt("PUT", "/providers/zai", change)
    assert response.status == 200, response.body
    text = running.path.read_text()
    assert 'api_key = "$ZAI_API_KEY"   # never expanded on disk' in text
    assert "[REDACTED]" not in text
    answer = await post(
        running.url + "/v1/chat/completions", {"model": "zai,glm-5", "messages": PROMPT}
    )
    assert answer.status == 200  # the provider still authenticates with the real key


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("PUT", "/router", {"default": "nope,glm-5"}, "router.default[0]"),
        ("PUT", "/router", {"thinkk": "zai,glm-5"}, "router.thinkk"),
        ("PUT", "/router", {"default": None}, "router.default"),
        (
            "PUT",
            "/providers/evil",
            {"api_base_url": "http://169.254.169.254/latest", "models": ["m"]},
            "providers[1].api_base_url",
        ),
        (
            "PUT",
            "/providers/zai",
            {"api_base_url": "http://[::ffff:a9fe:a9fe]/"},
            "providers[0].api_base_url",
        ),
        ("PUT", "/providers/zai", {"api_key": "$UNSET_VARIABLE"}, "providers.api_key"),
        ("PUT", "/providers/zai", {"name": "other"}, "providers.name"),
        ("DELETE", "/providers/zai", None, "providers"),
        ("DELETE", "/providers/ghost", None, "providers"),
    ],
)
async def test_invalid_changes_change_nothing(
    running: Running, method: str, path: str, body: Any, param: str
) -> None:
    before = running.path.read_bytes()
    response = await running.mgmt(method, path, body)
    assert response.status == 400, response.body
    error = openai_error(response)
    assert (error["code"], error["param"]) == ("invalid_config", param)
    assert running.path.read_bytes() == before
    config = (await running.mgmt("GET", "/config")).json()["config"]
    assert [p["name"] for p in config["providers"]] == ["zai"]
    assert config["router"]["default"] == "zai,glm-5"


async def test_bodies_must_be_json_objects(running: Running) -> None:
    for data in (b"[1, 2]", b"not json", b""):
        response = await call("PUT", running.url + "/v0/management/router", data=data, headers=AUTH)
        assert response.status == 400
        openai_error(response)


async def test_reload_from_disk(running: Running) -> None:
    text = running.path.read_text().replace(
        'default = "zai,glm-5"      # primary route',
        'default = "zai,glm-5"      # primary route\nbackground = "zai,glm-5"',
    )
    text = text.replace(
        "allow_localhost = true", "allow_localhost = true\nallow_private_ips = true"
    )
    running.path.write_text(text)
    response = await running.mgmt("POST", "/config/reload")
    assert response.status == 200, response.body
    body = response.json()
    assert body["written"] is False
    assert body["config"]["router"]["background"] == "zai,glm-5"
    assert body["restart_required"] == ["security"]
    assert body["config"]["security"]["ssrf"]["allow_private_ips"] is False  # the running one
    running.path.write_text("[router\n")
    broken = await running.mgmt("POST", "/config/reload")
    assert broken.status == 400
    assert "invalid TOML" in openai_error(broken)["message"]
    assert (await running.mgmt("GET", "/config")).json()["config"]["router"]["background"]


async def test_log_level_really_changes(running: Running, llmproxy_level: None) -> None:
    logging.getLogger("llmproxy").setLevel(logging.INFO)
    assert (await running.mgmt("GET", "/logs/level")).json() == {
        "logger": "llmproxy",
        "level": "info",
    }
    changed = await running.mgmt("PUT", "/logs/level", {"level": "DEBUG"})
    assert changed.json()["level"] == "debug"
    assert logging.getLogger("llmproxy").level == logging.DEBUG
    assert logging.getLogger("llmproxy.fallback").isEnabledFor(logging.DEBUG)
    bad = await running.mgmt("PUT", "/logs/level", {"level": "verbose"})
    assert (bad.status, openai_error(bad)["param"]) == (400, "level")


async def test_daemon_without_a_file_cannot_persist(apps: Apps) -> None:
    text = config_file("https://api.z.ai/api/paas/v4")
    proxy = await apps.start(parse_config(text, ENV))
    response = await call("POST", proxy.url + "/v0/management/config/reload", headers=AUTH)
    assert response.status == 409
    assert openai_error(response)["code"] == "no_config_file"


async def test_delete_a_provider(running: Running) -> None:
    cerebras = running.sims["cerebras"]
    added = await running.mgmt(
        "PUT",
        "/providers/cerebras",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["llama-3.3-70b"],
        },
    )
    assert added.status == 200
    removed = await running.mgmt("DELETE", "/providers/cerebras")
    assert removed.status == 200, removed.body
    assert [p["name"] for p in removed.json()["config"]["providers"]] == ["zai"]
    assert "cerebras" not in running.path.read_text()
    assert "# never expanded on disk" in running.path.read_text()


async def test_keys_added_live_are_redacted_from_logs(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    cerebras = running.sims["cerebras"]
    added = await running.mgmt(
        "PUT",
        "/providers/cerebras",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["llama-3.3-70b"],
        },
    )
    assert added.status == 200
    with caplog.at_level(logging.INFO):
        logging.getLogger("llmproxy.fallback").warning("careless: %s %s", CEREBRAS_KEY, ZAI_KEY)
    assert CEREBRAS_KEY not in caplog.text and ZAI_KEY not in caplog.text
    assert "careless: [REDACTED] [REDACTED]" in caplog.text


# --- the secret cannot read secrets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/providers/zai", {"models": ["$ZAI_API_KEY"]}),
        ("/providers/zai", {"api_base_url": "http://127.0.0.1:1/${ZAI_API_KEY}"}),
        ("/providers/zai", {"timeouts": {"connect_ms": "$ZAI_API_KEY"}}),
        ("/router", {"default": "$ZAI_API_KEY"}),
        ("/router", {"model_mappings": [{"from": "$ZAI_API_KEY", "to": "zai,glm-5"}]}),
    ],
    ids=["models", "url", "nested", "route", "mapping"],
)
async def test_variables_are_refused_outside_secret_fields(
    running: Running, path: str, change: dict[str, Any]
) -> None:
    before = running.path.read_text()
    refused = await running.mgmt("PUT", path, change)
    assert refused.status == 400
    assert "expanded only in api_key and headers" in openai_error(refused)["message"]
    assert ZAI_KEY not in refused.body.decode()
    assert running.path.read_text() == before
    models = await get(running.url + "/v1/models")
    assert ZAI_KEY not in models.body.decode()


async def test_whether_a_variable_is_set_cannot_be_probed(running: Running) -> None:
    unset = await running.mgmt("PUT", "/providers/zai", {"models": ["$NO_SUCH_VARIABLE"]})
    present = await running.mgmt("PUT", "/providers/zai", {"models": ["$ZAI_API_KEY"]})
    assert unset.status == present.status == 400
    assert openai_error(unset)["message"] == openai_error(present)["message"]


async def test_a_stored_key_never_follows_a_changed_url(running: Running) -> None:
    cerebras = running.sims["cerebras"]
    moved = await running.mgmt(
        "PUT", "/providers/zai", {"api_base_url": cerebras.base_url, "api_key": "[REDACTED]"}
    )
    assert moved.status == 400
    assert "give api_key again" in openai_error(moved)["message"]
    borrowed = await running.mgmt(
        "PUT",
        "/providers/evil",
        {"api_base_url": cerebras.base_url, "api_key": "$ZAI_API_KEY", "models": ["m"]},
    )
    assert borrowed.status == 400
    assert "may name only a variable" in openai_error(borrowed)["message"]
    # Naming its own variable again is not giving the key again: the key would follow.
    same = await running.mgmt(
        "PUT", "/providers/zai", {"api_base_url": cerebras.base_url, "api_key": "$ZAI_API_KEY"}
    )
    assert same.status == 400
    assert "give api_key again" in openai_error(same)["message"]
    # A header added in the same move may not name the provider's own variable either.
    smuggled = await running.mgmt(
        "PUT",
        "/providers/zai",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "anything",
            "headers": {"X-Steal": "$ZAI_API_KEY"},
            "models": ["glm-5", "llama-3.3-70b"],
        },
    )
    assert smuggled.status == 400, smuggled.body
    assert "headers.X-Steal" in openai_error(smuggled)["message"]
    # The same move with the key given again is a plain change.
    rekeyed = await running.mgmt(
        "PUT",
        "/providers/zai",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["glm-5", "llama-3.3-70b"],
        },
    )
    assert rekeyed.status == 200, rekeyed.body
    answer = await post(
        running.url + "/v1/chat/completions", {"model": "zai,llama-3.3-70b", "messages": PROMPT}
    )
    assert answer.status == 200
    assert all(r.headers.get("authorization") != f"Bearer {ZAI_KEY}" for r in cerebras.requests)
    assert all(ZAI_KEY not in r.headers.values() for r in cerebras.requests)


async def test_token_stores_stay_in_llmproxy_directories(
    apps: Apps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = tmp_path / "config.toml"
    path.write_text(f"""[proxy]
api_key = "{CLIENT_KEY}"
[management]
enabled = true
secret_key = "$LLMPROXY_MGMT_KEY"
[router]
default = "openai-codex,gpt-5.2"
[[providers]]
name = "openai-codex"
api_base_url = "https://chatgpt.com/backend-api/codex"
models = ["gpt-5.2"]
auth_file = "{tmp_path / "by-hand.json"}"
""")
    proxy = await apps.start(load_config(path, ENV), env=ENV)
    url = f"{proxy.url}/v0/management/providers/openai-codex"
    for outside in ("/etc/passwd", str(tmp_path / "data" / ".." / "elsewhere.json")):
        refused = await call("PUT", url, json={"auth_file": outside}, headers=AUTH)
        assert refused.status == 400, outside
        assert "must lie under llmproxy's" in openai_error(refused)["message"]
    inside = str(tmp_path / "data" / "llmproxy" / "codex" / "work.json")
    accepted = await call("PUT", url, json={"auth_file": inside}, headers=AUTH)
    assert accepted.status == 200, accepted.body
    moved = await call("PUT", url, json={"api_base_url": "https://example.com/codex"}, headers=AUTH)
    assert moved.status == 400
    added = await call(
        "PUT",
        f"{proxy.url}/v0/management/providers/other-codex",
        json={"format": "codex", "models": ["gpt-5.2"]},
        headers=AUTH,
    )
    assert added.status == 400


UNLISTED = "may name only a variable this provider's secrets already use"


@pytest.mark.parametrize(
    "change",
    [
        {"api_key": "$LLMPROXY_MGMT_KEY"},
        {"api_key": "$NO_SUCH_VARIABLE"},
        {"api_key": "${LLMPROXY_MGMT_KEY:-x}"},
        {"headers": {"authorization": "Bearer $LLMPROXY_MGMT_KEY"}},
    ],
    ids=["set", "unset", "with-default", "header"],
)
async def test_a_secret_may_not_name_any_other_variable(
    running: Running, change: dict[str, Any]
) -> None:
    """The management secret itself, or any variable of the daemon's environment, cannot be
    sent to a URL of the caller's choosing; set or not, the refusal reads the same."""
    cerebras = running.sims["cerebras"]
    before = running.path.read_text()
    for name in ("evil", "zai"):  # a new provider, and an existing one on its own URL
        url = cerebras.base_url if name == "evil" else running.sims["zai"].base_url
        refused = await running.mgmt(
            "PUT", f"/providers/{name}", {"api_base_url": url, "models": ["glm-5"], **change}
        )
        assert refused.status == 400, refused.body
        error = openai_error(refused)
        assert UNLISTED in error["message"] and "not set" not in error["message"]
        assert error["param"] in ("providers.api_key", "providers.headers.authorization")
    assert running.path.read_text() == before
    config = (await running.mgmt("GET", "/config")).json()["config"]
    assert [p["name"] for p in config["providers"]] == ["zai"]
    sent = await post(
        running.url + "/v1/chat/completions", {"model": "evil,glm-5", "messages": PROMPT}
    )
    assert sent.status == 400 and not cerebras.requests


async def test_a_secret_may_name_its_own_or_a_listed_variable(running: Running) -> None:
    # zai's secrets already name $ZAI_API_KEY: it may name it again, in a header too
    again = await running.mgmt(
        "PUT",
        "/providers/zai",
        {"api_key": "$ZAI_API_KEY", "headers": {"x-zai-key": "$ZAI_API_KEY"}},
    )
    assert again.status == 200, again.body
    assert 'x-zai-key = "$ZAI_API_KEY"' in running.path.read_text()
    answer = await post(
        running.url + "/v1/chat/completions", {"model": "zai,glm-5", "messages": PROMPT}
    )
    assert answer.status == 200
    assert running.sims["zai"].requests[-1].headers.get("x-zai-key") == ZAI_KEY
    # $CEREBRAS_API_KEY is in [management] secret_variables: any provider may name it ...
    cerebras = running.sims["cerebras"]
    added = await running.mgmt(
        "PUT",
        "/providers/cerebras",
        {
            "api_base_url": cerebras.base_url,
            "api_key": "$CEREBRAS_API_KEY",
            "models": ["llama-3.3-70b"],
        },
    )
    assert added.status == 200, added.body
    # ... but only one: a listed variable another provider uses stays with that provider
    shared = await running.mgmt(
        "PUT",
        "/providers/other",
        {"api_base_url": cerebras.base_url, "api_key": "$CEREBRAS_API_KEY", "models": ["m"]},
    )
    assert shared.status == 400
    assert "holds provider 'cerebras'" in openai_error(shared)["message"]


def test_secret_variables_are_names_and_never_echo_a_value() -> None:
    text = config_file("https://api.z.ai/v1", 'secret_variables = ["$ZAI_API_KEY"]')
    with pytest.raises(ConfigError) as refused:
        parse_config(text, ENV)
    assert refused.value.key == "management.secret_variables[0]"
    assert ZAI_KEY not in str(refused.value)
    assert parse_config(
        config_file("https://api.z.ai/v1", LISTED), ENV
    ).management.secret_variables == ("CEREBRAS_API_KEY",)


async def test_the_list_is_read_at_start_like_the_rest_of_management(running: Running) -> None:
    """Listing a variable in the file and reloading does not let the API name it."""
    text = running.path.read_text()
    running.path.write_text(
        text.replace(LISTED, 'secret_variables = ["CEREBRAS_API_KEY", "LLMPROXY_MGMT_KEY"]')
    )
    reloaded = await running.mgmt("POST", "/config/reload")
    assert reloaded.status == 200 and "management" in reloaded.json()["restart_required"]
    refused = await running.mgmt(
        "PUT",
        "/providers/evil",
        {
            "api_base_url": running.sims["cerebras"].base_url,
            "api_key": "$LLMPROXY_MGMT_KEY",
            "models": ["m"],
        },
    )
    assert refused.status == 400 and UNLISTED in openai_error(refused)["message"]
