"""The ChatGPT account behind a simulated codex provider, and the tokens it issues.

Access and id tokens are unsigned JWT-shaped strings (`make_jwt`): the Codex CLI and llmproxy
only read their claims, and the simulator checks them by value. A refresh token is used up when
it is redeemed, as chatgpt.com's are.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from typing import Literal

import orjson

from proxy.types import JSONObject

CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
TOKEN_PATH = "/oauth/token"
AUTH_CLAIMS = "https://api.openai.com/auth"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: JSONObject) -> str:
    """An unsigned JWT-shaped token: clients only read its claims, the simulator checks it by
    value."""
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(claims))}.{_b64(b'sim')}"


class CodexAccount:
    """The ChatGPT account behind a simulated codex provider: which tokens it issued and which
    still work. Thread-safe: a test may issue or revoke tokens while another thread serves."""

    def __init__(
        self,
        account_id: str = "acct-sim",
        *,
        plan_type: str = "plus",
        email: str = "sim@example.com",
        lifetime: float = 3600.0,
    ) -> None:
        self.account_id = account_id
        self.plan_type = plan_type
        self.email = email
        self.lifetime = lifetime
        self.refresh_delay = 0.0
        """Seconds the token endpoint takes, so concurrent refresh attempts overlap."""
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._access: set[str] = set()
        self._refresh: str | None = None
        self._refreshes = 0

    @property
    def refreshes(self) -> int:
        """Successful refreshes so far."""
        with self._lock:
            return self._refreshes

    def issue(self, *, expires_in: float | None = None) -> JSONObject:
        """A new sign-in: `{id_token, access_token, refresh_token}`. Earlier refresh tokens stop
        working, as when the user signs in again."""
        with self._lock:
            return self._issue(self.lifetime if expires_in is None else expires_in)

    def _issue(self, expires_in: float) -> JSONObject:
        serial = next(self._serial)
        now = int(time.time())
        auth = {
            "chatgpt_account_id": self.account_id,
            "chatgpt_plan_type": self.plan_type,
            "chatgpt_user_id": f"user-{self.account_id}",
        }
        access = make_jwt(
            {"exp": now + int(expires_in), "iat": now, "jti": f"at-{serial}", AUTH_CLAIMS: auth}
        )
        id_token = make_jwt({"exp": now + 3600, "iat": now, "email": self.email, AUTH_CLAIMS: auth})
        refresh = f"rt-{self.account_id}-{serial}"
        self._access.add(access)
        self._refresh = refresh
        return {"id_token": id_token, "access_token": access, "refresh_token": refresh}

    def codex_auth_json(
        self,
        *,
        shape: Literal["nested", "flat"] = "nested",
        expires_in: float | None = None,
        with_account_id: bool = True,
    ) -> JSONObject:
        """The `~/.codex/auth.json` the Codex CLI would have written after signing in."""
        tokens = self.issue(expires_in=expires_in)
        if with_account_id:
            tokens["account_id"] = self.account_id
        if shape == "flat":
            return {**tokens, "last_refresh": "2026-01-01T00:00:00Z"}
        return {"OPENAI_API_KEY": None, "tokens": tokens, "last_refresh": "2026-01-01T00:00:00Z"}

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far is refused (401) until the client refreshes."""
        with self._lock:
            self._access.clear()

    def accepts(self, authorization: str | None, account_id: str | None) -> bool:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            if token not in self._access or account_id != self.account_id:
                return False
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return isinstance(claims, dict) and float(claims.get("exp", 0)) > time.time()

    def refresh(self, refresh_token: str) -> JSONObject | None:
        """New tokens for the current refresh token (which is then used up), else None."""
        with self._lock:
            if refresh_token != self._refresh:
                return None
            self._refreshes += 1
            tokens = self._issue(self.lifetime)
        return {**tokens, "expires_in": int(self.lifetime), "token_type": "Bearer"}
