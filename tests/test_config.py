from __future__ import annotations

import logging
from pathlib import Path

import pytest

from proxy.config import (
    Timeouts,
    compile_glob,
    expand_env,
    expand_string,
    find_config_path,
    load_config,
    parse_chain,
    parse_config,
    parse_target,
)
from proxy.config.address import DaemonAddress, read_address
from proxy.errors import ConfigError
from proxy.security.settings import ManagementSettings
from proxy.types import ProviderFormat, Scenario, Target

CONFIGS = Path(__file__).parent / "data" / "configs"
ENV = {
    "PROXY_API_KEY": "proxy-secret-1",
    "ZAI_API_KEY": "zai-secret-2",
    "CEREBRAS_API_KEY": "cerebras-secret-3",
    "MINIMAX_API_KEY": "minimax-secret-4",
}

PROVIDERS = """
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/api/paas/v4"
api_key = "k"
models = ["glm-5", "glm-4.7"]

[[providers]]
name = "cerebras"
api_base_url = "https://api.cerebras.ai/v1"
models = ["llama-*"]

[[providers]]
name = "minimax"
api_base_url = "https://api.minimax.io/anthropic"
models = ["MiniMax-M2.5"]
"""
ROUTER = '[router]\ndefault = "zai,glm-5"\n'


def parse(text: str, env: dict[str, str] | None = None) -> object:
    return parse_config(text, env or {})


# --- the reference files -----------------------------------------------------------------------


def test_reference_deployment_loads_unchanged() -> None:
    config = load_config(CONFIGS / "reference-deployment.toml", ENV)
    r = config.router
    assert r.default == (Target("zai", "glm-5"), Target("cerebras", "llama-3.3-70b"))
    assert r.route(Scenario.THINK) == (
        Target("openai-codex", "gpt-5.2"),
        Target("zai", "glm-5"),
        Target("minimax", "MiniMax-M2.5"),
    )
    assert r.route(Scenario.BACKGROUND) == (Target("openai-codex", "gpt-5.2-codex"),)
    assert r.route(Scenario.IMAGE) is None
    assert [(m.pattern, m.to) for m in r.model_mappings] == [
        ("thinking", (Target("openai-codex", "gpt-5.2"),)),
        ("cheapest", (Target("cerebras", "llama3.1-8b"),)),
        ("fastest", (Target("cerebras", "llama-3.3-70b"),)),
    ]
    formats = {p.name: p.format for p in config.providers}
    assert formats == {
        "openai-codex": ProviderFormat.CODEX,
        "zai": ProviderFormat.OPENAI,
        "cerebras": ProviderFormat.OPENAI,
        "minimax": ProviderFormat.ANTHROPIC,
    }
    zai = config.provider("zai")
    assert zai is not None and zai.api_key == "zai-secret-2"
    assert config.proxy.api_keys == ("proxy-secret-1",)
    assert config.proxy.total_timeout == 600.0
    assert config.source.endswith("reference-deployment.toml")


def test_reference_example_loads_and_warns_about_inert_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmproxy.config"):
        config = load_config(CONFIGS / "reference-example.toml", ENV)
    assert "providers[1].transformers: accepted for compatibility but has no effect" in caplog.text
    assert config.router.route(Scenario.WEB_SEARCH) is not None
    assert config.router.long_context_threshold == 60000
    assert config.extra["oauth"] == {"openai": {"enabled": True}}
    assert config.management == ManagementSettings(enabled=False)
    haiku = config.router.mapping_for("Claude-HAIKU-4-5")
    assert haiku is not None and haiku.to == (Target("zai", "glm-4.7"),)


def test_secrets_never_in_repr() -> None:
    text = f"""
[proxy]
api_keys = ["$PROXY_API_KEY", "second-proxy-key"]
{ROUTER}
{PROVIDERS}
[providers.headers]
X-Private-Token = "header-secret"
"""
    config = parse_config(text, ENV)
    dump = repr(config)
    for secret in ("proxy-secret-1", "second-proxy-key", "header-secret"):
        assert secret not in dump
    zai = config.provider("zai")
    assert zai is not None and "api_key" not in repr(zai)
    assert config.proxy.api_keys == ("proxy-secret-1", "second-proxy-key")
    minimax = config.provider("minimax")
    assert minimax is not None and minimax.headers == {"X-Private-Token": "header-secret"}


# --- validation: every error names its key ------------------------------------------------------

BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("[proxy]\nprot = 3456\n" + ROUTER + PROVIDERS, "proxy.prot", "did you mean 'port'?"),
    ('[proxy]\nport = "3456"\n' + ROUTER + PROVIDERS, "proxy.port", "expected integer, got string"),
    ("[proxy]\nport = true\n" + ROUTER + PROVIDERS, "proxy.port", "expected integer, got boolean"),
    ("[proxy]\nport = 70000\n" + ROUTER + PROVIDERS, "proxy.port", "between 1 and 65535"),
    ('[proxy]\napi_key = ""\n' + ROUTER + PROVIDERS, "proxy.api_key", "must not be empty"),
    ("[proxy]\napi_keys = [1]\n" + ROUTER + PROVIDERS, "proxy.api_keys[0]", "expected string"),
    ("[proxy]\ntimeout_ms = 0\n" + ROUTER + PROVIDERS, "proxy.timeout_ms", "must be > 0"),
    (
        "[proxy.timeouts]\nconect_ms = 5\n" + ROUTER + PROVIDERS,
        "proxy.timeouts.conect_ms",
        "did you mean 'connect_ms'?",
    ),
    (
        '[proxy.timeouts]\nstream_idle_ms = "1s"\n' + ROUTER + PROVIDERS,
        "proxy.timeouts.stream_idle_ms",
        "expected number of milliseconds, got string",
    ),
    ("[routers]\n" + ROUTER + PROVIDERS, "routers", "did you mean 'router'?"),
    ("security = 1\n" + ROUTER + PROVIDERS, "security", "expected table, got integer"),
    (PROVIDERS, "router", "required table is missing"),
    ("[router]\nthink = 'zai,glm-5'\n" + PROVIDERS, "router.default", "required key is missing"),
    ('[router]\ndefault = ""\n' + PROVIDERS, "router.default", "empty chain"),
    ('[router]\ndefault = "  "\n' + PROVIDERS, "router.default", "empty chain"),
    ('[router]\ndefault = "zai,glm-5||zai,glm-4.7"\n' + PROVIDERS, "router.default[1]", "empty"),
    ('[router]\ndefault = "zai,glm-5|"\n' + PROVIDERS, "router.default[1]", "empty target"),
    ('[router]\ndefault = "zai,,glm-5"\n' + PROVIDERS, "router.default[0]", "contains"),
    ('[router]\ndefault = "glm-5"\n' + PROVIDERS, "router.default[0]", "not a target"),
    ('[router]\ndefault = ",glm-5"\n' + PROVIDERS, "router.default[0]", "empty provider"),
    (
        '[router]\ndefault = "zai,glm-5|zai , glm-5"\n' + PROVIDERS,
        "router.default[1]",
        "duplicate target 'zai,glm-5'",
    ),
    ('[router]\ndefault = "zai,glm-6"\n' + PROVIDERS, "router.default[0]", "did you mean 'glm-5'"),
    (
        ROUTER + 'think = "zai,glm-5|cerebras,llama-3|minimx,MiniMax-M2.5"\n' + PROVIDERS,
        "router.think[2]",
        "unknown provider 'minimx' (known: zai, cerebras, minimax); did you mean 'minimax'?",
    ),
    (
        ROUTER + 'background = "minimax,minimax-m2.5"\n' + PROVIDERS,
        "router.background[0]",
        "model 'minimax-m2.5' is not served by provider 'minimax' (its models: MiniMax-M2.5)",
    ),
    (
        ROUTER + "long_context_threshold = 0\n" + PROVIDERS,
        "router.long_context_threshold",
        "between",
    ),
    (
        ROUTER + 'plan_implementation = "zai,glm-5"\n' + PROVIDERS,
        "router.plan_implementation",
        "not supported",
    ),
    (ROUTER + "strategy = 5\n" + PROVIDERS, "router.strategy", "expected string, got integer"),
    (
        ROUTER + 'background_model_pattern = ""\n' + PROVIDERS,
        "router.background_model_pattern",
        "empty",
    ),
    (
        ROUTER + '[[router.model_mappings]]\nfrom = "x"\nto = "zia,glm-5"\n' + PROVIDERS,
        "router.model_mappings[0].to[0]",
        "unknown provider 'zia'",
    ),
    (
        ROUTER + '[[router.model_mappings]]\nfrom = "x"\nto = "glm-5"\n' + PROVIDERS,
        "router.model_mappings[0].to[0]",
        "not a target",
    ),
    (
        ROUTER + '[[router.model_mappings]]\nfrom = "claude-["\nto = "zai,glm-5"\n' + PROVIDERS,
        "router.model_mappings[0].from",
        "unclosed '['",
    ),
    (
        ROUTER + '[[router.model_mappings]]\nfrom = "x"\n' + PROVIDERS,
        "router.model_mappings[0].to",
        "required key is missing",
    ),
    (
        ROUTER
        + '[[router.model_mappings]]\nfrom = "x"\nto = "zai,glm-5"\nthink = "zai,glm-5"\n'
        + PROVIDERS,
        "router.model_mappings[0].think",
        "move 'think' above the first mapping",
    ),
    (
        ROUTER
        + '[[router.model_mappings]]\nfrom = "x"\nto = "zai,glm-5"\nbidirectional = "y"\n'
        + PROVIDERS,
        "router.model_mappings[0].bidirectional",
        "expected boolean",
    ),
    (ROUTER, "providers", "at least one [[providers]] entry"),
    (
        ROUTER + PROVIDERS.replace('name = "minimax"', 'name = "ZAI"'),
        "providers[2].name",
        "duplicate",
    ),
    (
        ROUTER + PROVIDERS.replace('name = "minimax"', 'name = "mini max"'),
        "providers[2].name",
        "invalid",
    ),
    (
        ROUTER + PROVIDERS.replace("api_base_url =", "api_base ="),
        "providers[0].api_base",
        "api_base_url",
    ),
    (
        ROUTER + PROVIDERS.replace('"https://api.z.ai/api/paas/v4"', '"api.z.ai/v4"'),
        "providers[0].api_base_url",
        "expected an http(s) URL",
    ),
    (
        ROUTER + PROVIDERS.replace('["glm-5", "glm-4.7"]', "[]"),
        "providers[0].models",
        "at least one",
    ),
    (ROUTER + PROVIDERS.replace('"glm-4.7"', "4.7"), "providers[0].models[1]", "expected string"),
    (ROUTER + PROVIDERS.replace('"glm-4.7"', '"glm-{4"'), "providers[0].models[1]", "unclosed '{'"),
    (ROUTER + PROVIDERS + 'format = "gemini"\n', "providers[2].format", "unknown format 'gemini'"),
    (
        ROUTER + PROVIDERS + 'prefill = "yes"\n',
        "providers[2].prefill",
        "expected true, false or one of assistant, prefix, partial, continue_final_message",
    ),
    (
        ROUTER + PROVIDERS + 'transformers = "openai"\n',
        "providers[2].transformers",
        "expected array",
    ),
    (
        ROUTER + PROVIDERS + '[providers.headers]\n"X Bad" = "v"\n',
        "providers[2].headers.X Bad",
        "invalid HTTP header name",
    ),
    (
        ROUTER + PROVIDERS + '[providers.headers]\nX-Two = "a\\nb"\n',
        "providers[2].headers.X-Two",
        "control character (U+000A)",
    ),
    (
        ROUTER + PROVIDERS + "[providers.timeouts]\nstream_idle_ms = -1\n",
        "providers[2].timeouts.stream_idle_ms",
        "must be > 0",
    ),
    (
        ROUTER + PROVIDERS + "[providers.timeouts]\nidle_ms = 1\n",
        "providers[2].timeouts.idle_ms",
        "unknown",
    ),
    (
        ROUTER + PROVIDERS.replace('api_key = "k"', 'api_key = "$NOPE"'),
        "providers[0].api_key",
        "NOPE",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD_CONFIGS)
def test_bad_config_names_its_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert info.value.key == key
    assert message in info.value.message
    assert str(info.value).startswith(f"{key}: ")


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[router]\ndefault = "zai,glm-5\n', {}, source="my.toml")
    assert "my.toml: invalid TOML" in str(info.value)
    assert "line 2" in str(info.value)


def test_unset_variable_names_key_and_variable() -> None:
    text = (CONFIGS / "reference-deployment.toml").read_text()
    env = {k: v for k, v in ENV.items() if k != "ZAI_API_KEY"}
    with pytest.raises(ConfigError) as info:
        parse_config(text, env)
    assert str(info.value) == "providers[1].api_key: environment variable ZAI_API_KEY is not set"


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml", {})


# --- $VAR expansion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expanded"),
    [
        ("$A", "alpha"),
        ("${A}", "alpha"),
        ("Bearer $A!", "Bearer alpha!"),
        ("${A}${B_2}", "alphabeta"),
        ("$A$B_2", "alphabeta"),
        ("${A}_suffix", "alpha_suffix"),
        ("$A_suffix", "x"),  # the longest name is taken, as in shells
        ("cost $$5", "cost $5"),
        ("$$A", "$A"),
        ("$INDIRECT", "$A"),  # expanded text is not expanded again
        ("no dollars", "no dollars"),
        ("${A:-fallback}", "alpha"),
        ("${UNSET:-fallback}", "fallback"),  # unset or empty: the default, as in sh
        ("${EMPTY:-fallback}", "fallback"),
        ("${UNSET:-}", ""),
        ("http://${HOST:-127.0.0.1}:${PORT:-8080}/v1", "http://127.0.0.1:8080/v1"),
    ],
)
def test_expand_string(raw: str, expanded: str) -> None:
    env = {"A": "alpha", "B_2": "beta", "A_suffix": "x", "INDIRECT": "$A", "EMPTY": ""}
    assert expand_string(raw, env, "k") == expanded


@pytest.mark.parametrize("raw", ["$", "a$", "${A", "${}", "$1", "${A-B}"])
def test_stray_dollar_is_an_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="stray"):
        expand_string(raw, {"A": "x"}, "proxy.host")


def test_unset_variables_can_be_collected_instead_of_failing() -> None:
    unset: dict[str, str] = {}
    assert expand_env({"p": [{"k": "$KEY"}], "h": "$HOST"}, {"HOST": "h"}, unset=unset) == {
        "p": [{"k": ""}],
        "h": "h",
    }
    assert unset == {"p[0].k": "KEY"}


def test_a_misspelt_format_gets_a_did_you_mean() -> None:
    text = ROUTER + PROVIDERS.replace('name = "zai"', 'name = "zai"\nformat = "anthropc"', 1)
    with pytest.raises(ConfigError, match="did you mean 'anthropic'"):
        parse_config(text, {})


def test_expand_env_walks_lists_and_tables_with_paths() -> None:
    data = {"p": [{"h": {"x": "${A}-$A"}, "n": 3, "b": True}], "l": ["$A", "lit"]}
    assert expand_env(data, {"A": "a"}) == {
        "p": [{"h": {"x": "a-a"}, "n": 3, "b": True}],
        "l": ["a", "lit"],
    }
    with pytest.raises(ConfigError) as info:
        expand_env(data, {})
    assert info.value.key == "p[0].h.x"


def test_expansion_reaches_every_string_value() -> None:
    text = f"""
[proxy]
host = "$HOST"
{ROUTER}default = "$PRIMARY|cerebras,${{SMALL}}"
{PROVIDERS}
[oauth.claude]
client_secret = "$SECRET"
"""
    env = {"HOST": "0.0.0.0", "PRIMARY": "zai,glm-5", "SMALL": "llama-3.1", "SECRET": "s"}
    config = parse_config(text.replace(ROUTER + "default", "[router]\ndefault"), env)
    assert config.proxy.host == "0.0.0.0"
    assert config.router.default == (Target("zai", "glm-5"), Target("cerebras", "llama-3.1"))
    assert config.extra["oauth"]["claude"]["client_secret"] == "s"


# --- targets, chains, globs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("ollama,qwen2.5-coder:latest", Target("ollama", "qwen2.5-coder:latest")),
        ("openrouter:x/y:free", Target("openrouter", "x/y:free")),
        (
            "openrouter,meta-llama/llama-3.3-70b-instruct:free",
            Target("openrouter", "meta-llama/llama-3.3-70b-instruct:free"),
        ),
        ("zai:glm-5", Target("zai", "glm-5")),
        ("  zai , glm-5 ", Target("zai", "glm-5")),
    ],
)
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["", " ", "glm-5", "zai,", ",glm-5", "zai,glm 5", "a,,b", "a b,c"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_target(text)


def test_parse_chain() -> None:
    assert parse_chain("zai,glm-5 | ollama:qwen:7b") == (
        Target("zai", "glm-5"),
        Target("ollama", "qwen:7b"),
    )
    with pytest.raises(ConfigError) as info:
        parse_chain("zai,glm-5|cerebras")
    assert info.value.key == "[1]"
    with pytest.raises(ConfigError, match="empty chain"):
        parse_chain("")


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*haiku*", ["claude-3-5-HAIKU-latest", "haiku"], ["claude-sonnet-4"]),
        ("claude-?-opus", ["claude-3-opus"], ["claude-33-opus"]),
        ("claude-{opus,sonnet}-*", ["claude-opus-4", "Claude-Sonnet-4-5"], ["claude-haiku-4"]),
        ("gpt-{4{o,.1},5}", ["gpt-4o", "gpt-4.1", "gpt-5"], ["gpt-4", "gpt-4x"]),
        ("v[0-9]", ["v7"], ["va", "v10"]),
        ("v[!0-9]", ["va"], ["v7"]),
        ("a.b", ["a.b"], ["axb"]),
        ("[[]x", ["[x"], ["x"]),
        ("a,b}", ["a,b}"], ["a"]),
    ],
)
def test_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern, ignore_case=True)
    assert all(regex.fullmatch(m) for m in matches)
    assert not any(regex.fullmatch(m) for m in misses)


def test_provider_model_globs_are_case_sensitive() -> None:
    config = parse_config(ROUTER + PROVIDERS, {})
    cerebras = config.provider("cerebras")
    minimax = config.provider("minimax")
    assert cerebras is not None and minimax is not None
    assert cerebras.serves("llama-3.3-70b") and not cerebras.serves("LLAMA-3")
    assert minimax.serves("MiniMax-M2.5") and not minimax.serves("minimax-m2.5")


# --- formats, prefill, timeouts ----------------------------------------------------------------


def _provider_block(name: str, extra: str = "") -> str:
    return f'[[providers]]\nname = "{name}"\napi_base_url = "http://h"\nmodels = ["*"]\n{extra}'


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("openai-codex", ProviderFormat.CODEX),
        ("minimax", ProviderFormat.ANTHROPIC),
        ("kimi", ProviderFormat.ANTHROPIC),
        ("anthropic", ProviderFormat.ANTHROPIC),
        ("zai", ProviderFormat.OPENAI),
        ("my-local-llm", ProviderFormat.OPENAI),
    ],
)
def test_format_defaults_from_known_names(name: str, fmt: ProviderFormat) -> None:
    text = f'[router]\ndefault = "{name},m"\n' + _provider_block(name)
    provider = parse_config(text, {}).providers[0]
    assert provider.format is fmt
    assert provider.prefill == ("assistant" if fmt is ProviderFormat.ANTHROPIC else False)
    assert provider.api_key == ""


def test_explicit_format_and_prefill_override_the_defaults() -> None:
    text = '[router]\ndefault = "minimax,m"\n' + _provider_block(
        "minimax", 'format = "openai"\nprefill = true\nallow_private_network = true\n'
    )
    provider = parse_config(text, {}).providers[0]
    assert provider.format is ProviderFormat.OPENAI
    assert provider.prefill == "assistant"
    assert provider.allow_private_network is True


def test_timeouts_resolve_provider_over_proxy_over_defaults() -> None:
    text = (
        "[proxy]\nretry_after_cap_ms = 0\n"
        + "[proxy.timeouts]\nconnect_ms = 2500\nstream_idle_ms = 90000\n"
        + '[router]\ndefault = "a,m"\n'
        + _provider_block("a", "[providers.timeouts]\nstream_idle_ms = 120000\n")
        + _provider_block("b")
    )
    config = parse_config(text, {})
    a, b = config.providers
    assert config.proxy.timeouts == Timeouts(connect=2.5, stream_idle=90.0)
    assert config.proxy.retry_after_cap == 0.0
    assert a.timeouts == Timeouts(connect=2.5, stream_idle=120.0)
    assert b.timeouts == config.proxy.timeouts
    assert Timeouts().first_token_for(40000) == pytest.approx(80.0)


def test_defaults() -> None:
    config = parse_config(ROUTER + PROVIDERS, {})
    assert (config.proxy.host, config.proxy.port, config.proxy.api_keys) == ("127.0.0.1", 3456, ())
    assert config.proxy.timeouts == Timeouts()
    assert config.proxy.retry_after_cap == 5.0
    assert config.router.long_context_threshold == 60000
    assert config.router.is_background_model("claude-3-5-Haiku")
    assert config.extra == {}


# --- lookup order ------------------------------------------------------------------------------


def test_find_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    system = tmp_path / "etc" / "config.toml"
    user = xdg / "llmproxy" / "config.toml"
    explicit = tmp_path / "explicit.toml"
    named = tmp_path / "named.toml"

    assert find_config_path(None, {}, system_path=system) is None
    system.parent.mkdir(parents=True)
    system.write_text("")
    assert find_config_path(None, {}, system_path=system) == system
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config_path(None, {}, system_path=system) == user
    named.write_text("")
    env = {"LLMPROXY_CONFIG": str(named)}
    assert find_config_path(None, env, system_path=system) == named
    explicit.write_text("")
    assert find_config_path(explicit, env, system_path=system) == explicit


def test_named_paths_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_path(tmp_path / "nope.toml", {})
    assert info.value.key == "--config"
    with pytest.raises(ConfigError) as info:
        find_config_path(None, {"LLMPROXY_CONFIG": str(tmp_path / "nope.toml")})
    assert info.value.key == "LLMPROXY_CONFIG"


def test_user_dir_override(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    found = find_config_path(None, {}, user_dir=tmp_path, system_path=tmp_path / "x")
    assert found == tmp_path / "config.toml"


# --- the daemon's address alone (proxy.config.address) -----------------------------------------

ADDRESS_CONFIG = """
[proxy]
host = "$HOST"
port = 4567
api_key = "$CLIENT_KEY"
api_keys = ["second"]
[router]
default = "p,m"
[[providers]]
name = "p"
api_base_url = "https://api.example.com/v1"
api_key = "$PROVIDER_KEY"
models = ["m"]
"""


def test_the_address_reads_as_the_whole_config_does(tmp_path: Path) -> None:
    """`chat` and `status` read only `[proxy]`: the same host, port and keys as the whole config
    (with the `.env` beside it), and no provider key needed."""
    path = tmp_path / "config.toml"
    path.write_text(ADDRESS_CONFIG)
    (tmp_path / ".env").write_text("CLIENT_KEY=from-dotenv\nHOST=0.0.0.0\n")
    env = {"HOST": "127.0.0.2"}  # the environment wins over .env
    address = read_address(path, env)
    whole = DaemonAddress.of(load_config(path, env, unset={}))
    assert address == whole
    assert (address.host, address.port, address.api_keys) == (
        "127.0.0.2",
        4567,
        ("from-dotenv", "second"),
    )
    (tmp_path / ".env").unlink()  # an unset client key: this shell has none to send
    assert read_address(path, env) == DaemonAddress("127.0.0.2", 4567, ("second",), path)


@pytest.mark.parametrize(
    "proxy",
    ['port = "3456"', "port = 0", "port = true", 'host = ""', "api_keys = 'one'", "api_key = 7"],
)
def test_an_address_the_quick_read_does_not_take_is_left_to_the_whole_config(
    tmp_path: Path, proxy: str
) -> None:
    """None, so that the caller loads the whole config and reports its key-path error."""
    path = tmp_path / "config.toml"
    path.write_text(f"[proxy]\n{proxy}\n")
    assert read_address(path, {}) is None
    with pytest.raises(ConfigError):
        load_config(path, {}, unset={})
    path.write_text("[proxy\n")
    assert read_address(path, {}) is None
