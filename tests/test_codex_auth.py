"""The ChatGPT sign-in: both auth.json shapes, the token store, refreshing once, the CLI."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from pathlib import Path

import orjson
import pytest
from codex_sims import seed_store
from support import local_client
from typer.testing import CliRunner

from cli.main import app
from proxy.codex_auth import (
    CodexAuth,
    CodexTokens,
    TokenStore,
    account_id_from_claims,
    jwt_claims,
    parse_codex_auth,
)
from proxy.errors import ConfigError, UpstreamStatusError, UpstreamUnavailable
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.simulate.codex_account import make_jwt
from proxy.types import ErrorClass

CLAIMS = "https://api.openai.com/auth"


def token(exp: float, account: str | None = "acct-1") -> str:
    claims: dict[str, object] = {"exp": int(exp)}
    if account:
        claims[CLAIMS] = {"chatgpt_account_id": account, "chatgpt_plan_type": "pro"}
    return make_jwt(claims)


# --- auth.json shapes --------------------------------------------------------------------------


def test_nested_shape_of_the_codex_cli() -> None:
    access = token(time.time() + 3600, account=None)
    data = {
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": token(time.time() + 3600, account="acct-from-id"),
            "access_token": access,
            "refresh_token": "rt-1",
            "account_id": "acct-given",
        },
        "last_refresh": "2026-02-01T10:00:00Z",
    }
    tokens = parse_codex_auth(data)
    assert (tokens.access_token, tokens.refresh_token) == (access, "rt-1")
    assert tokens.account_id == "acct-given"  # the file's own id wins over the claims
    assert tokens.last_refresh == "2026-02-01T10:00:00Z"


def test_nested_shape_without_account_id_takes_it_from_the_id_token() -> None:
    data = {
        "tokens": {
            "id_token": token(time.time() + 3600, account="acct-from-id"),
            "access_token": token(time.time() + 3600, account=None),
            "refresh_token": "rt-1",
        },
        "OPENAI_API_KEY": "sk-exchanged",  # the TypeScript CLI's shape also carried a key
    }
    assert parse_codex_auth(data).account_id == "acct-from-id"


def test_flat_shape_and_camel_case() -> None:
    access = token(time.time() + 3600, account="acct-from-access")
    flat = parse_codex_auth({"access_token": access, "refresh_token": "rt-2"})
    assert flat.account_id == "acct-from-access"
    camel = parse_codex_auth(
        {"tokens": {"accessToken": access, "refreshToken": "rt-3", "accountId": "acct-c"}}
    )
    assert (camel.refresh_token, camel.account_id) == ("rt-3", "acct-c")


def test_api_key_login_and_missing_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="API-key login") as api_key:
        parse_codex_auth({"OPENAI_API_KEY": "sk-x", "tokens": None})
    assert api_key.value.key == "access_token"
    with pytest.raises(ConfigError) as missing:
        parse_codex_auth({"tokens": {"access_token": "a"}})
    assert missing.value.key == "tokens.refresh_token"
    with pytest.raises(ConfigError):
        parse_codex_auth(["not", "an", "object"])


def test_jwt_claims_of_non_jwts_are_empty() -> None:
    assert jwt_claims("opaque-token") == {}
    assert jwt_claims("a.!!!.c") == {}
    assert account_id_from_claims("opaque", token(0, "acct-9")) == "acct-9"
    tokens = CodexTokens("opaque", "rt")
    assert tokens.expires_at is None and not tokens.expiring()


def test_tokens_never_show_in_repr() -> None:
    tokens = CodexTokens("secret-access", "secret-refresh", "secret-id", "acct")
    assert "secret" not in repr(tokens)


# --- the store ---------------------------------------------------------------------------------


def test_store_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "data" / "codex" / "auth.json")
    first = CodexTokens(token(time.time() + 60), "rt-1", account_id="acct-1")
    store.save(first)
    store.save(CodexTokens(token(time.time() + 120), "rt-2", account_id="acct-1"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert os.listdir(store.path.parent) == ["auth.json"]  # no temporary file left behind
    loaded = store.load()
    assert loaded is not None and loaded.refresh_token == "rt-2"
    assert TokenStore(tmp_path / "absent.json").load() is None


# --- refreshing --------------------------------------------------------------------------------


def codex_sim() -> SimulatedProvider:
    return SimulatedProvider("codex", "codex", ["gpt-5.2"])


async def test_expired_token_is_refreshed_once_for_concurrent_callers(tmp_path: Path) -> None:
    async with run_simulated([codex_sim()]) as sims:
        sim = sims["codex"]
        sim.account.refresh_delay = 0.1  # the callers overlap while the refresh is in flight
        store = TokenStore(seed_store(sim, tmp_path / "auth.json", expires_in=-10))
        async with local_client() as client:
            auth = CodexAuth(store, client, token_endpoint=sim.token_endpoint)
            results = await asyncio.gather(*(auth.tokens() for _ in range(8)))
        assert sim.account.refreshes == 1 and auth.refreshes == 1
        assert len({r.access_token for r in results}) == 1
        assert not results[0].expiring()
        saved = store.load()
        assert saved is not None and saved.access_token == results[0].access_token
        assert saved.last_refresh is not None


async def test_a_rejected_token_is_refreshed_once_and_then_reused(tmp_path: Path) -> None:
    async with run_simulated([codex_sim()]) as sims:
        sim = sims["codex"]
        store = TokenStore(seed_store(sim, tmp_path / "auth.json"))
        async with local_client() as client:
            auth = CodexAuth(store, client, token_endpoint=sim.token_endpoint)
            rejected = await auth.tokens()
            fresh = await asyncio.gather(*(auth.after_rejection(rejected) for _ in range(4)))
        assert sim.account.refreshes == 1
        assert {f.access_token for f in fresh} == {fresh[0].access_token} != {rejected.access_token}


async def test_two_stores_on_one_file_refresh_once(tmp_path: Path) -> None:
    """Two CodexAuth objects stand for two processes: the file lock and the re-read make the
    second one use the first one's refresh instead of spending the rotated refresh token."""
    async with run_simulated([codex_sim()]) as sims:
        sim = sims["codex"]
        sim.account.refresh_delay = 0.1
        path = seed_store(sim, tmp_path / "auth.json", expires_in=-10)
        async with local_client() as client:
            first = CodexAuth(TokenStore(path), client, token_endpoint=sim.token_endpoint)
            second = CodexAuth(TokenStore(path), client, token_endpoint=sim.token_endpoint)
            a, b = await asyncio.gather(first.tokens(), second.tokens())
        assert sim.account.refreshes == 1
        assert a.access_token == b.access_token


async def test_refresh_across_processes_happens_once(tmp_path: Path) -> None:
    async with run_simulated([codex_sim()]) as sims:
        sim = sims["codex"]
        sim.account.refresh_delay = 0.3
        path = seed_store(sim, tmp_path / "auth.json", expires_in=-10)
        script = (
            "import asyncio, sys\n"
            "from pathlib import Path\n"
            "from proxy.codex_auth import CodexAuth, TokenStore\n"
            "from proxy.security.outgoing import outgoing_client\n"
            "from proxy.security.ssrf import NetworkPolicy\n"
            "async def main():\n"
            "    print('ready', flush=True)\n"
            "    s = outgoing_client(lambda: NetworkPolicy.build(True, False, ()))\n"
            "    t = await CodexAuth(TokenStore(Path(sys.argv[1])), s,"
            " token_endpoint=sys.argv[2]).tokens()\n"
            "    await s.close()\n"
            "    print(t.access_token)\n"
            "asyncio.run(main())\n"
        )
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(path),
            sim.token_endpoint,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert other.stdout is not None
        assert await other.stdout.readline() == b"ready\n"  # both refresh at the same time
        async with local_client() as client:
            auth = CodexAuth(TokenStore(path), client, token_endpoint=sim.token_endpoint)
            mine = await auth.tokens()
        out, err = await other.communicate()
        assert other.returncode == 0, err.decode()
        assert sim.account.refreshes == 1
        assert out.decode().split() == [mine.access_token]


async def test_a_dead_refresh_token_is_an_auth_failure(tmp_path: Path) -> None:
    async with run_simulated([codex_sim()]) as sims:
        sim = sims["codex"]
        path = seed_store(sim, tmp_path / "auth.json", expires_in=-10)
        sim.account.issue()  # signing in again elsewhere retires the stored refresh token
        async with local_client() as client:
            auth = CodexAuth(TokenStore(path), client, token_endpoint=sim.token_endpoint)
            with pytest.raises(UpstreamStatusError) as failed:
                await auth.tokens()
    assert failed.value.error_class is ErrorClass.AUTH
    assert failed.value.status == 401
    assert "refresh_token_reused" in failed.value.message


async def test_without_a_sign_in_the_target_is_unavailable(tmp_path: Path) -> None:
    async with local_client() as client:
        auth = CodexAuth(TokenStore(tmp_path / "none.json"), client)
        with pytest.raises(UpstreamUnavailable, match="import-codex"):
            await auth.tokens()


# --- the CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_cli_imports_either_shape_and_status_never_prints_tokens(
    tmp_path: Path, shape: str
) -> None:
    sim = codex_sim()  # the account alone: no server needed to issue tokens
    data = sim.account.codex_auth_json(shape=shape, with_account_id=False)  # type: ignore[arg-type]
    codex_file = tmp_path / "codex-home" / "auth.json"
    codex_file.parent.mkdir()
    codex_file.write_bytes(orjson.dumps(data))
    store = tmp_path / "store" / "auth.json"
    runner = CliRunner()

    imported = runner.invoke(app, ["auth", "import-codex", str(codex_file), "--store", str(store)])
    assert imported.exit_code == 0, imported.output
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    status = runner.invoke(app, ["auth", "status", "--store", str(store), "--json"])
    assert status.exit_code == 0, status.output
    shown = orjson.loads(status.stdout)
    assert shown["account_id"] == "acct-codex"  # from the token claims
    assert shown["plan"] == "plus" and shown["email"] == "sim@example.com"
    assert shown["signed_in"] is True and shown["expired"] is False
    text = runner.invoke(app, ["auth", "status", "--store", str(store)])
    tokens = data["tokens"] if shape == "nested" else data
    for secret in (tokens["access_token"], tokens["refresh_token"], tokens["id_token"]):
        assert secret not in status.output + text.output + imported.output


def test_cli_import_from_codex_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = codex_sim()
    (tmp_path / "auth.json").write_bytes(orjson.dumps(sim.account.codex_auth_json()))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    store = tmp_path / "store.json"
    result = CliRunner().invoke(app, ["auth", "import-codex", "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["imported_from"] == str(tmp_path / "auth.json")


def test_cli_reports_bad_files_and_empty_stores(tmp_path: Path) -> None:
    bad = tmp_path / "auth.json"
    bad.write_text('{"OPENAI_API_KEY": "sk-test"}')
    runner = CliRunner()
    result = runner.invoke(
        app, ["auth", "import-codex", str(bad), "--store", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 2 and "API-key login" in result.output
    empty = runner.invoke(app, ["auth", "status", "--store", str(tmp_path / "none.json")])
    assert empty.exit_code == 1 and "import-codex" in empty.output
