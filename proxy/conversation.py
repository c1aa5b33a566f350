"""Which conversation a request belongs to, derived without keeping anything of the prompt.

Coding agents resend the whole conversation on every turn; the prompt-cache affinity
(`proxy.affinity`) needs to recognise the turns of one conversation. Sources, first found wins:

1. `x-llmproxy-session` header: the client says so explicitly;
2. Claude Code's session: the `session_id` in `metadata.user_id` (a JSON string since 2.1; older
   versions send `user_<hash>_account_<uuid>_session_<uuid>`), else its
   `x-claude-code-session-id` header (count_tokens calls carry no metadata);
3. Codex and OpenAI clients: the body's `prompt_cache_key` (Codex sets it to its thread id), else
   Codex's `session-id` / `session_id` / `conversation_id` headers;
4. else a hash of the system prompt and the first user message, which stay the same while a
   conversation grows. Two unrelated one-shot requests can share those, so this identity is only
   looked up for a request that continues a conversation (it carries an earlier answer); a
   first turn is routed afresh and recorded.

Only a SHA-256 digest leaves this module: of the source, the id and the model the client asked
for (Claude Code sends its main and its small-model requests in one session, and they route
differently, so they must not share an entry). Prompts and ids are never stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from proxy.frozen import frozen
from proxy.types import SESSION_HEADER as SESSION_HEADER
from proxy.types import ClientAPI, JSONObject

_CLAUDE_CODE_HEADER = "x-claude-code-session-id"
_CODEX_HEADERS = ("session-id", "session_id", "conversation_id")
_LEGACY_USER_ID = re.compile(r"_session_([0-9A-Za-z-]{8,})$")
_MAX_ID_CHARS = 256  # an id longer than this is not an id; hashing it whole still works


@frozen
class Conversation:
    """A conversation's key (a hex digest) and where the identity came from (for `route test`
    and the `x-llmproxy-affinity` header: "header", "claude-code", "prompt_cache_key"...)."""

    key: str
    source: str
    continued: bool = True
    """Whether an earlier turn may be looked up: always for an explicit id; for the prompt
    hash, only when the request carries an earlier answer."""


def conversation_of(
    body: JSONObject, headers: Mapping[str, str], fmt: ClientAPI
) -> Conversation | None:
    """The conversation of a generation request, or None when nothing identifies one (a body
    with neither a session id nor any prompt text)."""
    model = body.get("model")
    model = model if isinstance(model, str) else ""
    for source, value in _explicit_ids(body, headers):
        if value:
            return Conversation(_digest(source, value[:_MAX_ID_CHARS], model), source)
    opening, continued = _opening(body, fmt)
    if not opening:
        return None
    return Conversation(_digest("prompt", opening, model), "prompt", continued)


def _explicit_ids(body: JSONObject, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    found = [(SESSION_HEADER, headers.get(SESSION_HEADER, "").strip())]
    found.append(("claude-code", _claude_code_session(body.get("metadata"))))
    found.append(("claude-code", headers.get(_CLAUDE_CODE_HEADER, "").strip()))
    key = body.get("prompt_cache_key")
    found.append(("prompt_cache_key", key.strip() if isinstance(key, str) else ""))
    found += [("codex-session", headers.get(name, "").strip()) for name in _CODEX_HEADERS]
    return found


def _claude_code_session(metadata: Any) -> str:
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str):
        return ""
    if user_id.startswith("{"):
        import orjson  # here: `route test` reads no user id, and orjson's import is costly

        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        session = parsed.get("session_id") if isinstance(parsed, dict) else None
        return session if isinstance(session, str) else ""
    legacy = _LEGACY_USER_ID.search(user_id)
    return legacy.group(1) if legacy else ""


_ANSWER_ITEMS = frozenset(
    {
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "reasoning",
    }
)


def _opening(body: JSONObject, fmt: ClientAPI) -> tuple[str, bool]:
    """The system prompt and the first user message as text (what every turn repeats), and
    whether the request carries an earlier answer."""
    if fmt is ClientAPI.RESPONSES:
        system: Any = body.get("instructions")
        messages = body.get("input")
    else:
        system = body.get("system")
        messages = body.get("messages")
    if isinstance(messages, str):  # Responses: `input` may be one string
        messages = [{"role": "user", "content": messages}]
    parts = [_text(system)]
    first_user = ""
    continued = False
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "assistant" or message.get("type") in _ANSWER_ITEMS:
            continued = True
            break
        if first_user:
            continue
        if role in ("system", "developer"):
            parts.append(_text(message.get("content")))
        elif role == "user":
            first_user = _text(message.get("content"))
    if not first_user:
        return "", False
    return "\x00".join((*parts, first_user)), continued


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _digest(source: str, value: str, model: str) -> str:
    material = "\x00".join((source, value, model)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(material).hexdigest()[:32]
