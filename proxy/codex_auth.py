"""ChatGPT subscription tokens for codex providers: import, store, refresh.

    Codex CLI ~/.codex/auth.json --(llmproxy auth import-codex)--> llmproxy's token store
    token store --(CodexAuth.tokens(), refreshed before `exp`)--> Authorization, chatgpt-account-id

The store is one JSON file per account, 0600 in a 0700 directory under the platformdirs user
data dir, always replaced atomically, in llmproxy's own format: a change of Codex's schema (the
reference proxy's import broke on one) then only touches the importer, and Codex may keep its
sign-in in the OS keyring instead of a file. Caveat: OpenAI rotates the refresh token on every
refresh, so once llmproxy has refreshed, the Codex CLI's own copy can no longer refresh (and the
other way round); give each its own sign-in, or re-import after signing in again.

Refreshing happens once per expiry, whoever asks: an asyncio lock serialises the requests of one
process, and an exclusive `flock` on `<store>.lock` serialises processes. Whoever gets the lock
re-reads the store first and uses a token another holder already refreshed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import platformdirs
from yarl import URL

from proxy.config.reader import header_fault
from proxy.errors import (
    ConfigError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from proxy.frozen import field, frozen, replace
from proxy.providers.boundary import upstream_errors
from proxy.security.http1 import Client
from proxy.security.outgoing import read_capped
from proxy.types import ErrorClass, JSONObject

log = logging.getLogger("llmproxy.codex_auth")

CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
"""The Codex CLI's OAuth client: refresh tokens it issued refresh only with it."""
DEFAULT_TOKEN_ENDPOINT = "https://auth.openai.com/oauth/token"
REFRESH_MARGIN = 300.0
"""Refresh this many seconds before the access token's `exp`."""
REFRESH_TIMEOUT = 30.0
MAX_TOKEN_ANSWER_BYTES = 1024 * 1024
AUTH_CLAIMS = "https://api.openai.com/auth"
PROFILE_CLAIMS = "https://api.openai.com/profile"
STORE_VERSION = 1


# --- tokens ------------------------------------------------------------------------------------


def jwt_claims(token: str) -> JSONObject:
    """The payload of a JWT, unverified (the server verifies; we only read `exp` and ids).
    Anything that is not a JWT has no claims."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _claim(claims: JSONObject, section: str, key: str) -> str | None:
    value = claims.get(section)
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, str) and found else None


@frozen
class CodexTokens:
    """One ChatGPT sign-in. Token fields never appear in repr or logs."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    id_token: str = field(default="", repr=False)
    account_id: str | None = None
    last_refresh: str | None = None
    imported_from: str | None = None

    @property
    def expires_at(self) -> float | None:
        exp = jwt_claims(self.access_token).get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None

    def expiring(self, margin: float = REFRESH_MARGIN, now: float | None = None) -> bool:
        """Whether the access token expires within `margin` seconds. A token whose expiry is
        unknown is used until the backend rejects it."""
        expires = self.expires_at
        return expires is not None and expires - margin <= (time.time() if now is None else now)

    def _claims(self) -> tuple[JSONObject, JSONObject]:
        return jwt_claims(self.id_token), jwt_claims(self.access_token)

    @property
    def plan_type(self) -> str | None:
        return next(
            (p for c in self._claims() if (p := _claim(c, AUTH_CLAIMS, "chatgpt_plan_type"))), None
        )

    @property
    def email(self) -> str | None:
        for claims in self._claims():
            email = claims.get("email") or _claim(claims, PROFILE_CLAIMS, "email")
            if isinstance(email, str) and email:
                return email
        return None

    def to_json(self) -> JSONObject:
        return {
            "version": STORE_VERSION,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "account_id": self.account_id,
            "last_refresh": self.last_refresh,
            "imported_from": self.imported_from,
        }


def account_id_from_claims(*tokens: str) -> str | None:
    """`chatgpt_account_id` from the first token whose claims carry it."""
    for token in tokens:
        found = _claim(jwt_claims(token), AUTH_CLAIMS, "chatgpt_account_id")
        if found:
            return found
    return None


def _field(source: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = source.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def parse_codex_auth(data: Any, *, source: str = "auth.json") -> CodexTokens:
    """A Codex CLI `auth.json`, in either shape, -> tokens.

    Nested (the Codex CLI since its Rust rewrite, and its TypeScript predecessor):
    `{"OPENAI_API_KEY": ..., "tokens": {"id_token", "access_token", "refresh_token",
    "account_id"?}, "last_refresh": ...}`. Flat (older exports and account tools):
    `{"access_token", "refresh_token", "id_token"?, "account_id"?, ...}` at the top level.
    camelCase spellings are accepted in both. The account id is taken from the token claims
    (`https://api.openai.com/auth` -> `chatgpt_account_id`) when the file does not give it.
    Raises ConfigError naming the offending key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("", f"{source}: expected a JSON object")
    nested = data.get("tokens")
    if isinstance(nested, Mapping):
        tokens, prefix = nested, "tokens."
    elif nested is None:
        tokens, prefix = data, ""
    else:
        raise ConfigError("tokens", f"{source}: expected an object")
    access = _field(tokens, "access_token", "accessToken")
    refresh = _field(tokens, "refresh_token", "refreshToken")
    if access is None:
        if _field(data, "OPENAI_API_KEY"):
            raise ConfigError(
                f"{prefix}access_token",
                f"{source} holds an API-key login, not a ChatGPT sign-in: use an `openai` "
                "provider with that key, or run `codex login` with ChatGPT first",
            )
        raise ConfigError(f"{prefix}access_token", f"{source}: required key is missing")
    if refresh is None:
        raise ConfigError(f"{prefix}refresh_token", f"{source}: required key is missing")
    id_token = _field(tokens, "id_token", "idToken") or ""
    account = (
        _field(tokens, "account_id", "accountId", "chatgpt_account_id")
        or _field(data, "account_id", "accountId", "chatgpt_account_id")
        or account_id_from_claims(id_token, access)
    )
    for name, value in ((f"{prefix}access_token", access), ("account_id", account or "")):
        if fault := header_fault(value):  # both are sent as headers on every request
            raise ConfigError(name, f"{source}: {fault}")
    last_refresh = _field(data, "last_refresh", "lastRefresh") or _field(tokens, "last_refresh")
    return CodexTokens(access, refresh, id_token, account, last_refresh)


def default_codex_auth_path(env: Mapping[str, str]) -> Path:
    """Where the Codex CLI keeps its sign-in: `$CODEX_HOME/auth.json` or `~/.codex/auth.json`."""
    home = env.get("CODEX_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".codex") / "auth.json"


def default_store_path() -> Path:
    return platformdirs.user_data_path("llmproxy") / "codex" / "auth.json"


def read_codex_auth_file(path: Path) -> CodexTokens:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError("", f"{path}: not JSON: {exc}") from None
    return replace(parse_codex_auth(data, source=str(path)), imported_from=str(path))


# --- the store ---------------------------------------------------------------------------------


class TokenStore:
    """One account's tokens in one file: 0600, in a 0700 directory, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def load(self) -> CodexTokens | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError("", f"{self.path}: the token store is not JSON: {exc}") from None
        tokens = parse_codex_auth(data, source=str(self.path))
        imported = data.get("imported_from") if isinstance(data, dict) else None
        return replace(tokens, imported_from=imported if isinstance(imported, str) else None)

    def save(self, tokens: CodexTokens) -> None:
        self._ensure_dir()
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(orjson.dumps(tokens.to_json(), option=orjson.OPT_INDENT_2))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _ensure_dir(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the store's cross-process lock (an exclusive flock on `<store>.lock`)."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        acquire = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(acquire)
        except asyncio.CancelledError:
            # The thread may still get the lock: close (and so release) only once it returns.
            acquire.add_done_callback(lambda _: os.close(fd))
            raise
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


# --- refreshing --------------------------------------------------------------------------------


class CodexAuth:
    """Fresh tokens for one store: refreshed before they expire, or once after a 401.

    Raises UpstreamError subclasses, so a failing account moves the request on to the next
    target like any other upstream failure: UNAVAILABLE when nothing is stored, AUTH when the
    sign-in cannot be refreshed.
    """

    def __init__(
        self,
        store: TokenStore,
        client: Client,
        *,
        token_endpoint: str = DEFAULT_TOKEN_ENDPOINT,
        client_id: str = CODEX_CLIENT_ID,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self.store = store
        self._client = client
        self._endpoint = token_endpoint
        self._client_id = client_id
        self._margin = margin
        self._lock = asyncio.Lock()
        self._current: CodexTokens | None = None
        self.refreshes = 0

    async def tokens(self) -> CodexTokens:
        current = self._current or self._load()
        self._current = current
        if not current.expiring(self._margin):
            return current
        return await self._refresh(current, force=False)

    async def after_rejection(self, rejected: CodexTokens) -> CodexTokens:
        """The backend answered 401 to `rejected`: refresh, unless someone already did."""
        return await self._refresh(rejected, force=True)

    def _load(self) -> CodexTokens:
        try:
            tokens = self.store.load()
        except ConfigError as exc:  # a damaged store fails this target over, nothing more
            log.warning("cannot use the ChatGPT token store: %s", exc)
            raise UpstreamUnavailable(
                f"the ChatGPT token store {self.store.path} is damaged: run "
                "`llmproxy auth import-codex` again"
            ) from exc
        if tokens is None:  # known before sending anything: the target is skipped
            raise UpstreamUnavailable(
                f"no ChatGPT sign-in in {self.store.path}: run `llmproxy auth import-codex`"
            )
        return tokens

    async def _refresh(self, stale: CodexTokens, *, force: bool) -> CodexTokens:
        async with self._lock, self.store.locked():
            latest = self._load()
            usable = not latest.expiring(self._margin)
            if usable and (latest.access_token != stale.access_token or not force):
                self._current = latest  # refreshed meanwhile, by this process or another
                return latest
            fresh = await self._request(latest)
            self.store.save(fresh)
            self._current = fresh
            self.refreshes += 1
            log.info("refreshed the ChatGPT access token in %s", self.store.path)
            return fresh

    async def _request(self, tokens: CodexTokens) -> CodexTokens:
        body = {
            "client_id": self._client_id,
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "scope": "openid profile email",
        }
        with upstream_errors(None, "token refresh", peer="the token endpoint"):
            async with asyncio.timeout(REFRESH_TIMEOUT):
                response = await self._client.request(
                    "POST",
                    URL(self._endpoint),
                    {"content-type": "application/json", "accept": "application/json"},
                    orjson.dumps(body),
                )
                try:
                    status = response.status
                    raw = await read_capped(response, MAX_TOKEN_ANSWER_BYTES)
                finally:
                    response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if status != 200 or not isinstance(data, dict) or not _field(data, "access_token"):
            raise UpstreamStatusError(
                f"refreshing the ChatGPT sign-in failed ({status}: {_refresh_error(data)}); "
                "sign in with `codex login` and run `llmproxy auth import-codex` again",
                status=status,
                error_class=ErrorClass.AUTH,
                body=data if isinstance(data, dict) else None,
            )
        access = str(data["access_token"])
        id_token = _field(data, "id_token") or tokens.id_token
        account = tokens.account_id or account_id_from_claims(id_token, access)
        if fault := header_fault(access + (account or "")):  # both become headers
            raise UpstreamStatusError(
                f"the token endpoint's new sign-in {fault}; sign in with `codex login` and run "
                "`llmproxy auth import-codex` again",
                status=status,
                error_class=ErrorClass.AUTH,
            )
        return CodexTokens(
            access_token=access,
            refresh_token=_field(data, "refresh_token") or tokens.refresh_token,
            id_token=id_token,
            account_id=account,
            last_refresh=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            imported_from=tokens.imported_from,
        )


def _refresh_error(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("code") or error.get("message") or "unknown error")[:200]
        if isinstance(error, str):
            return str(data.get("error_description") or error)[:200]
    # Never the body itself: it may be anything the endpoint chose to send back.
    return "no OAuth error in the answer"
