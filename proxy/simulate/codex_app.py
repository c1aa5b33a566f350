"""A simulated ChatGPT backend: `POST {base}/responses` (Codex over a ChatGPT subscription) and
the OAuth token endpoint `POST /oauth/token` that refreshes its sign-ins.

Behaves as chatgpt.com/backend-api/codex does for the Codex CLI:
- every request needs `Authorization: Bearer <access token>` and `chatgpt-account-id`; an
  expired or revoked token gets a 401 until the client refreshes it;
- the request must stream, must not store, must carry `instructions`, and may only use the
  fields the Codex CLI sends (`{"detail": "Unsupported parameter: ..."}` otherwise);
- the answer is Responses SSE: `response.created`, per item `output_item.added`, deltas
  (reasoning summary, output text, function-call arguments), the `*.done` summary events that
  repeat the content, `output_item.done`, and `response.completed` with the whole output and usage;
- every response carries ChatGPT's rate-limit headers, including an EMPTY
  `x-codex-credits-balance`, which broke the reference proxy's SSE library.

A 429 `usage_limit_reached` is `faults.codex_usage_limit()` in the provider's plan. Replies are
planned from a chat-completions view of the request (`chat_view`), so every format answers the
same question the same way.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiohttp import web

from proxy.frozen import replace
from proxy.simulate.delivery import Frame, FrameKind
from proxy.simulate.faults import Status, invalid_request
from proxy.simulate.prompt_cache import NO_CACHE, CacheUsage
from proxy.simulate.scripts import Reply, chunk, estimate_input_tokens
from proxy.simulate.wire import digest, json_response, sse_event
from proxy.types import JSONObject, StopReason

if TYPE_CHECKING:
    from proxy.simulate.provider import SimulatedProvider

CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
TOKEN_PATH = "/oauth/token"
AUTH_CLAIMS = "https://api.openai.com/auth"
ACCEPTED_FIELDS = frozenset(
    {
        "model",
        "instructions",
        "input",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "store",
        "stream",
        "include",
        "prompt_cache_key",
        "text",
        "client_metadata",
        "service_tier",
    }
)
# What chatgpt.com sends with every answer; the empty credits balance is the point.
RATE_LIMIT_HEADERS = {
    "x-codex-primary-used-percent": "12",
    "x-codex-primary-window-minutes": "300",
    "x-codex-secondary-used-percent": "3",
    "x-codex-credits-has-credits": "False",
    "x-codex-credits-balance": "",
}


# --- the account ---------------------------------------------------------------------------------


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


# --- reading the request -------------------------------------------------------------------------


def _texts(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [
        {"type": "text", "text": str(p.get("text", ""))}
        for p in (content if isinstance(content, list) else [])
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
    ]


def custom_tool_names(body: JSONObject) -> frozenset[str]:
    tools = body.get("tools")
    return frozenset(
        str(t.get("name"))
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and t.get("type") == "custom"
    )


def chat_view(body: JSONObject) -> JSONObject:
    """The request as chat completions, for planning the reply (top-level tools only: the
    simulated model never calls into a namespace)."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    messages: list[JSONObject] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            role = "system" if role == "developer" else role
            messages.append({"role": role, "content": _texts(item.get("content"))})
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments")
            if kind == "custom_tool_call":
                arguments = orjson.dumps({"input": item.get("input", "")}).decode()
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": arguments or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last.get("role") == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else _texts(output),
                }
            )
    tools: list[JSONObject] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            continue
        parameters = (
            tool.get("parameters")
            if tool.get("type") == "function"
            else {
                "type": "object",
                "properties": {"input": {"type": "string"}},
                "required": ["input"],
            }
        )
        tools.append(
            {
                "type": "function",
                "function": {"name": tool.get("name"), "parameters": parameters or {}},
            }
        )
    view: JSONObject = {"model": body.get("model"), "messages": messages}
    if tools:
        view["tools"] = tools
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        view["tool_choice"] = choice
    elif isinstance(choice, dict) and isinstance(choice.get("name"), str):
        view["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    return view


def _validate(body: Any) -> str | None:
    """The backend's 400 `detail` for a request it refuses, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - ACCEPTED_FIELDS)
    if unknown:
        return f"Unsupported parameter: {unknown[0]}"
    if body.get("stream") is not True:
        return "Stream must be set to true"
    if body.get("store") is not False:
        return "Store must be set to false"
    instructions = body.get("instructions")
    if not isinstance(instructions, str) or not instructions.strip():
        return "Instructions are required"
    if not isinstance(body.get("input"), list):
        return "Input must be a list"
    return None


# --- the answer ----------------------------------------------------------------------------------


def _usage(reply: Reply, cache: CacheUsage) -> JSONObject:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": cache.read},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(reply.reasoning)},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def response_frames(
    reply: Reply, body: JSONObject, created: int, cache: CacheUsage = NO_CACHE
) -> list[Frame]:
    """The SSE of one answer, as chatgpt.com streams it."""
    base = reply.id.removeprefix("chatcmpl-")
    response_id = f"resp_{base}"
    sequence = itertools.count()
    frames: list[Frame] = []
    output: list[JSONObject] = []

    def response(status: str, usage: JSONObject | None) -> JSONObject:
        body_out: JSONObject = {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "model": reply.model,
            "output": list(output) if status != "in_progress" else [],
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        if status == "incomplete":
            body_out["incomplete_details"] = {"reason": "max_output_tokens"}
        return body_out

    def emit(name: str, kind: FrameKind, **fields: Any) -> None:
        payload = {"type": name, "sequence_number": next(sequence), **fields}
        frames.append(Frame(sse_event(name, payload), kind))

    emit("response.created", FrameKind.META, response=response("in_progress", None))
    emit("response.in_progress", FrameKind.META, response=response("in_progress", None))
    meta = FrameKind.META
    if reply.reasoning:
        index, item_id = len(output), f"rs_{base}"
        at = {"item_id": item_id, "output_index": index}
        emit(
            "response.output_item.added",
            meta,
            output_index=index,
            item={"id": item_id, "type": "reasoning", "summary": []},
        )
        emit(
            "response.reasoning_summary_part.added",
            meta,
            **at,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        )
        for piece in reply.reasoning:
            emit(
                "response.reasoning_summary_text.delta",
                FrameKind.CONTENT,
                **at,
                summary_index=0,
                delta=piece,
            )
        text = reply.reasoning_text
        emit("response.reasoning_summary_text.done", meta, **at, summary_index=0, text=text)
        emit(
            "response.reasoning_summary_part.done",
            meta,
            **at,
            summary_index=0,
            part={"type": "summary_text", "text": text},
        )
        item = {
            "id": item_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": "gAAAAB-sim-" + digest("reasoning", text)[:32],
        }
        output.append(item)
        emit("response.output_item.done", meta, output_index=index, item=item)
    if reply.text:
        index, item_id = len(output), f"msg_{base}"
        at = {"item_id": item_id, "output_index": index}
        emit(
            "response.output_item.added",
            meta,
            output_index=index,
            item={
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        )
        text = reply.full_text
        empty: JSONObject
        part: JSONObject
        if reply.refusal:
            empty = {"type": "refusal", "refusal": ""}
            part = {"type": "refusal", "refusal": text}
        else:
            empty = {"type": "output_text", "text": "", "annotations": []}
            part = {"type": "output_text", "text": text, "annotations": []}
        emit("response.content_part.added", meta, **at, content_index=0, part=empty)
        for piece in reply.text:
            if reply.refusal:
                emit(
                    "response.refusal.delta", FrameKind.CONTENT, **at, content_index=0, delta=piece
                )
            else:
                emit(
                    "response.output_text.delta",
                    FrameKind.CONTENT,
                    **at,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
        if reply.refusal:
            emit("response.refusal.done", meta, **at, content_index=0, refusal=text)
        else:
            emit("response.output_text.done", meta, **at, content_index=0, text=text, logprobs=[])
        emit("response.content_part.done", meta, **at, content_index=0, part=part)
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        output.append(item)
        emit("response.output_item.done", meta, output_index=index, item=item)
    custom = custom_tool_names(body)
    for call in reply.tool_calls:
        index = len(output)
        if call.name in custom:
            raw = str(orjson.loads(call.arguments).get("input", ""))
            item_id = f"ctc_{base}_{index}"
            at = {"item_id": item_id, "output_index": index}
            emit(
                "response.output_item.added",
                meta,
                output_index=index,
                item={
                    "id": item_id,
                    "type": "custom_tool_call",
                    "status": "in_progress",
                    "call_id": call.id,
                    "name": call.name,
                    "input": "",
                },
            )
            for piece in chunk(raw, max(1, len(raw) // max(1, len(call.fragments)))):
                emit("response.custom_tool_call_input.delta", FrameKind.CONTENT, **at, delta=piece)
            emit("response.custom_tool_call_input.done", meta, **at, input=raw)
            item = {
                "id": item_id,
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": call.id,
                "name": call.name,
                "input": raw,
            }
        else:
            item_id = f"fc_{base}_{index}"
            at = {"item_id": item_id, "output_index": index}
            emit(
                "response.output_item.added",
                meta,
                output_index=index,
                item={
                    "id": item_id,
                    "type": "function_call",
                    "status": "in_progress",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": "",
                },
            )
            for fragment in call.fragments:
                emit(
                    "response.function_call_arguments.delta",
                    FrameKind.CONTENT,
                    **at,
                    delta=fragment,
                )
            arguments = "".join(call.fragments)
            emit("response.function_call_arguments.done", meta, **at, arguments=arguments)
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "call_id": call.id,
                "name": call.name,
                "arguments": arguments,
            }
        output.append(item)
        emit("response.output_item.done", meta, output_index=index, item=item)
    if reply.stop is StopReason.MAX_TOKENS:
        emit(
            "response.incomplete",
            FrameKind.DONE,
            response=response("incomplete", _usage(reply, cache)),
        )
    else:
        emit(
            "response.completed",
            FrameKind.DONE,
            response=response("completed", _usage(reply, cache)),
        )
    return frames


def expired_token() -> Status:
    return Status(
        401,
        {
            "error": {
                "message": "Your authentication token has expired. Please try signing in again.",
                "type": "invalid_request_error",
                "param": None,
                "code": "token_expired",
            }
        },
    )


def build_codex_app(sim: SimulatedProvider) -> web.Application:
    account = sim.account

    async def responses(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            delivery = sim.delivery(ex)
            body = await sim.read_body(request, ex)
            if not account.accepts(
                request.headers.get("Authorization"), request.headers.get("chatgpt-account-id")
            ):
                return delivery.reject(expired_token())
            if body is None:
                return delivery.reject(invalid_request(sim.format, "Invalid JSON body"))
            ex.stream = isinstance(body, dict) and body.get("stream") is True
            fault = sim.plan.next_fault()
            ex.fault = fault.label if fault is not None else None
            early = await delivery.before_headers(fault)
            if early is not None:
                return early
            problem = _validate(body)
            if problem is not None:
                return delivery.reject(Status(400, {"detail": problem}))
            model = str(body.get("model", ""))
            if sim.models and model not in sim.models:
                detail = (
                    f"The '{model}' model is not supported when using Codex with a ChatGPT account."
                )
                return delivery.reject(Status(400, {"detail": detail}))
            # Planned on the chat view, but billed for the whole prompt, instructions included.
            reply = replace(
                sim.reply_for(body),
                input_tokens=estimate_input_tokens(
                    {
                        "system": body.get("instructions"),
                        "messages": body.get("input"),
                        "tools": body.get("tools"),
                    }
                ),
            )
            frames = response_frames(reply, body, int(time.time()), sim.cache_usage(body, reply))
            return await delivery.stream(frames, fault)

    async def token(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            form = orjson.loads(raw)
        except orjson.JSONDecodeError:
            form = dict(await request.post())
        if not isinstance(form, dict) or form.get("grant_type") != "refresh_token":
            return json_response(
                {"error": {"message": "unsupported grant_type", "code": "unsupported_grant_type"}},
                400,
            )
        if form.get("client_id") != CODEX_CLIENT_ID:
            return json_response(
                {"error": {"message": "Unknown client", "code": "invalid_client"}}, 401
            )
        if account.refresh_delay:
            await asyncio.sleep(account.refresh_delay)
        tokens = account.refresh(str(form.get("refresh_token", "")))
        if tokens is None:
            message = (
                "Your refresh token has already been used to generate a new access token. "
                "Please try signing in again."
            )
            return json_response(
                {
                    "error": {
                        "message": message,
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "refresh_token_reused",
                    }
                },
                401,
            )
        return json_response(tokens)

    async def rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith(sim.base_path):
            response.headers.update(RATE_LIMIT_HEADERS)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(rate_limit_headers)
    app.router.add_post(f"{sim.base_path}/responses", responses)
    app.router.add_post(TOKEN_PATH, token)
    return app
