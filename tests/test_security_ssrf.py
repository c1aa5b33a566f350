"""SSRF: provider URLs are checked when the config is read, every resolved address is checked
again when connecting (DNS rebinding), and upstream redirects are never followed."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from raw_http import post
from security_support import Apps, FakeDNS
from support import CLIENT_KEY

from proxy.appkeys import LIVE
from proxy.config import parse_config
from proxy.errors import ConfigError
from proxy.frozen import replace
from proxy.security.resolver import GuardedResolver, policy_for
from proxy.security.ssrf import (
    DestinationRefused,
    NetworkPolicy,
    Reach,
    classify_address,
    url_refusal,
)
from proxy.simulate import SimulatedProvider, reply_text, run_simulated


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32): server IPv4, then the client IPv4 with every bit flipped."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= ~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF
    return str(ipaddress.IPv6Address(value))


ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:0:a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[2002:7f00:1::1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    f"http://[{teredo('169.254.169.254', '8.8.8.8')}]/",
    f"http://[{teredo('8.8.8.8', '10.0.0.1')}]/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://0.0.0.0/",
    "http://0.1.2.3/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fec0::1]/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0xa9fea9fe/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://192.0.2.10/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[2001:db8::1]/",
    "http://[100::1]/",
    "http://[4000::1]/",
    "ftp://example.com/v1",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http:///v1",
]

PRIVATE_UNLESS_ALLOWED = [
    ("http://127.0.0.1:11434/v1", Reach.LOOPBACK),
    ("http://127.8.9.10/", Reach.LOOPBACK),
    ("http://localhost:8080/", Reach.LOOPBACK),
    ("http://ollama.localhost/", Reach.LOOPBACK),
    ("http://[::1]:11434/", Reach.LOOPBACK),
    ("http://10.0.0.5/v1", Reach.PRIVATE),
    ("http://172.16.0.1/", Reach.PRIVATE),
    ("http://192.168.1.20:8000/v1", Reach.PRIVATE),
    ("http://[fd12:3456::1]/", Reach.PRIVATE),
]

PUBLIC = [
    "https://api.z.ai/api/paas/v4",
    "https://api.anthropic.com",
    "http://1.1.1.1/v1",
    "http://[2606:4700:4700::1111]/v1",
    "http://[64:ff9b::808:808]/v1",  # DNS64 answer for a public IPv4 host
    "http://[::ffff:8.8.8.8]/v1",
    "https://xn--bcher-kva.example/v1",
]


def provider_config(url: str, extra: str = "", security: str = "") -> str:
    return (
        f'{security}\n[router]\ndefault = "p,m"\n'
        f'[[providers]]\nname = "p"\napi_base_url = "{url}"\nmodels = ["m"]\n{extra}\n'
    )


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
@pytest.mark.parametrize(
    "allowance",
    [
        "",
        "allow_private_network = true",
    ],
    ids=["default", "provider-allows-private"],
)
def test_always_refused_at_load(url: str, allowance: str) -> None:
    everything = "[security.ssrf_protection]\nallow_localhost = true\nallow_private_ips = true"
    with pytest.raises(ConfigError) as info:
        parse_config(provider_config(url, allowance, everything if allowance else ""), {})
    assert info.value.key == "providers[0].api_base_url"


@pytest.mark.parametrize(("url", "reach"), PRIVATE_UNLESS_ALLOWED)
def test_loopback_and_private_need_an_allowance(url: str, reach: Reach) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(provider_config(url), {})
    assert info.value.key == "providers[0].api_base_url"
    assert "allow_private_network = true" in info.value.message
    parse_config(provider_config(url, "allow_private_network = true"), {})
    setting = "allow_localhost" if reach is Reach.LOOPBACK else "allow_private_ips"
    other = "allow_private_ips" if reach is Reach.LOOPBACK else "allow_localhost"
    parse_config(provider_config(url, security=f"[security.ssrf_protection]\n{setting} = true"), {})
    with pytest.raises(ConfigError):
        parse_config(
            provider_config(url, security=f"[security.ssrf_protection]\n{other} = true"), {}
        )


@pytest.mark.parametrize("url", PUBLIC)
def test_public_destinations_load(url: str) -> None:
    assert parse_config(provider_config(url), {}).providers[0].api_base_url == url


def test_protection_cannot_be_switched_off() -> None:
    text = provider_config(
        "https://api.z.ai/v1", security="[security.ssrf_protection]\nenabled = false"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert info.value.key == "security.ssrf_protection.enabled"


def test_refusals_explain_themselves() -> None:
    def reason(url: str) -> str:
        found = url_refusal(url, allow_loopback=False, allow_private=False)
        assert found is not None
        return found

    assert "169.254.169.254" in reason("http://[2002:a9fe:a9fe::]/") and "6to4" in reason(
        "http://[2002:a9fe:a9fe::]/"
    )
    assert "NAT64" in reason("http://[64:ff9b::a9fe:a9fe]/")
    assert "Teredo" in reason(f"http://[{teredo('8.8.8.8', '10.0.0.1')}]/")
    assert "it means 169.254.169.254" in reason("http://2852039166/")
    assert "it means 169.254.169.254" in reason("http://0251.0376.0251.0376/")
    assert "carrier-grade NAT" in reason("http://100.64.0.1/")
    assert "metadata" in reason("http://169.254.169.254/")


def test_address_classes() -> None:
    def reach(address: str) -> Reach:
        return classify_address(ipaddress.ip_address(address)).reach

    assert reach("8.8.8.8") is Reach.PUBLIC
    assert reach("127.0.0.1") is Reach.LOOPBACK
    assert reach("::1") is Reach.LOOPBACK
    assert reach("192.168.0.1") is Reach.PRIVATE
    assert reach("fd00::1") is Reach.PRIVATE
    assert reach("fd00:ec2::254") is Reach.FORBIDDEN
    assert reach("fd00:ec2::254%eth0") is Reach.FORBIDDEN
    assert reach("::ffff:127.0.0.1") is Reach.FORBIDDEN
    assert reach("64:ff9b::808:808") is Reach.PUBLIC


# --- connect time: the resolver ----------------------------------------------------------------


async def test_resolver_refuses_any_bad_address_in_the_answer() -> None:
    dns = FakeDNS(
        {
            "api.example": ["93.184.216.34"],
            "rebind.example": ["93.184.216.34", "127.0.0.1"],
            "meta.example": ["169.254.169.254"],
            "mapped.example": ["::ffff:169.254.169.254"],
            "lan.example": ["10.1.2.3"],
        }
    )
    guarded = GuardedResolver(lambda: NetworkPolicy(), dns)
    assert [r["host"] for r in await guarded.resolve("api.example", 443)] == ["93.184.216.34"]
    for host in ("rebind.example", "meta.example", "mapped.example", "lan.example"):
        with pytest.raises(DestinationRefused, match=host):
            await guarded.resolve(host, 443)
    local = GuardedResolver(
        lambda: NetworkPolicy.build(False, False, ["http://lan.example/v1"]), dns
    )
    assert [r["host"] for r in await local.resolve("lan.example", 80)] == ["10.1.2.3"]
    with pytest.raises(DestinationRefused):  # the allowance follows the host, not the answer
        await local.resolve("rebind.example", 80)
    with pytest.raises(DestinationRefused):  # metadata stays refused for an allowed host
        await GuardedResolver(
            lambda: NetworkPolicy.build(True, True, ["http://meta.example/"]), dns
        ).resolve("meta.example", 80)


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    started = Apps()
    yield started
    await started.close()


def sim() -> SimulatedProvider:
    return SimulatedProvider("local", "openai", ["m1"])


def hostname_config(port: int, allowance: str = "") -> str:
    return (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "local,m1"\n'
        f'[[providers]]\nname = "local"\napi_base_url = "http://llm.internal.test:{port}/v1"\n'
        f'api_key = "sim-key"\nmodels = ["m1"]\n{allowance}\n'
    )


CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["93.184.216.34", "127.0.0.1"]],
    ids=["private-answer", "rebinding-mixed-answer"],
)
async def test_hostname_resolving_to_loopback_is_refused_at_connect(
    apps: Apps, answer: list[str]
) -> None:
    async with run_simulated([sim()]) as sims:
        dns = FakeDNS({"llm.internal.test": answer})
        config = parse_config(hostname_config(sims["local"].port), {})  # a name: loads fine
        proxy = await apps.start(config, dns=dns)
        response = await post(proxy.url + "/v1/chat/completions", CHAT)
        assert sims["local"].requests == ()
    assert response.status >= 500
    assert response.headers["x-llmproxy-attempts"].startswith("local,m1=connection")
    assert "llm.internal.test" in dns.lookups


async def test_permitted_local_provider_by_name_still_works(apps: Apps) -> None:
    async with run_simulated([sim()]) as sims:
        dns = FakeDNS({"llm.internal.test": ["127.0.0.1"]})
        text = hostname_config(sims["local"].port, "allow_private_network = true")
        proxy = await apps.start(parse_config(text, {}), dns=dns)
        response = await post(proxy.url + "/v1/chat/completions", CHAT)
        assert len(sims["local"].requests) == 1
    assert response.status == 200, response.body
    content = response.json()["choices"][0]["message"]["content"]
    assert content == reply_text("local", "m1", "Hello there")


async def test_literal_address_is_checked_per_request_too(apps: Apps) -> None:
    """A config swapped in without the loader's check (defence in depth): the per-request URL
    guard refuses it before connecting."""
    async with run_simulated([sim()]) as sims:
        url = sims["local"].base_url
        text = provider_config(url, "allow_private_network = true").replace(
            "[router]", f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]'
        )
        config = parse_config(text, {})
        proxy = await apps.start(config)
        unchecked = replace(
            config,
            providers=tuple(replace(p, allow_private_network=False) for p in config.providers),
        )
        proxy.app[LIVE].replace(unchecked)
        response = await post(proxy.url + "/v1/chat/completions", {**CHAT, "model": "p,m"})
        assert sims["local"].requests == ()
    assert response.status >= 500
    assert "connection" in response.headers["x-llmproxy-attempts"]


async def test_upstream_redirect_is_not_followed(apps: Apps) -> None:
    hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"secret": "internal data"})

    inner_app = web.Application()
    inner_app.router.add_route("*", "/{tail:.*}", internal)
    inner = TestServer(inner_app, host="127.0.0.1")
    await inner.start_server()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(inner.make_url("/v1/chat/completions")))

    outer_app = web.Application()
    outer_app.router.add_route("*", "/{tail:.*}", redirect)
    outer = TestServer(outer_app, host="127.0.0.1")
    await outer.start_server()
    try:
        text = provider_config(str(outer.make_url("/v1")), "allow_private_network = true")
        text = f'[proxy]\napi_key = "{CLIENT_KEY}"\n' + text
        proxy = await apps.start(parse_config(text, {}))
        response = await post(proxy.url + "/v1/chat/completions", {**CHAT, "model": "p,m"})
    finally:
        await outer.close()
        await inner.close()
    assert hits == []
    assert response.status != 200
    assert "location" not in {k.lower() for k in response.headers}
    assert b"internal data" not in response.body


def test_a_local_codex_provider_allows_its_token_endpoint() -> None:
    text = (
        f'[proxy]\napi_key = "{CLIENT_KEY}"\n[router]\ndefault = "c,gpt-5.2"\n'
        '[[providers]]\nname = "c"\nformat = "codex"\nmodels = ["gpt-5.2"]\n'
        'api_base_url = "http://backend.lan/codex"\nallow_private_network = true\n'
        'token_endpoint = "http://auth.lan/oauth/token"\n'
    )
    policy = policy_for(parse_config(text, {}))
    assert policy.address_refusal("192.168.1.5", "auth.lan") is None
    assert policy.address_refusal("192.168.1.5", "other.lan") is not None
