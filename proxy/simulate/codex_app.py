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
same question the same way. The account and its tokens are `codex_account`, the SSE of an
answer `codex_frames`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from proxy.frozen import replace
from proxy.simulate.codex_account import CODEX_CLIENT_ID, TOKEN_PATH
from proxy.simulate.codex_frames import response_frames
from proxy.simulate.faults import Status, invalid_request
from proxy.simulate.scripts import estimate_input_tokens
from proxy.simulate.wire import json_response
from proxy.types import JSONObject

if TYPE_CHECKING:
    from proxy.simulate.provider import SimulatedProvider

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


# --- reading the request -------------------------------------------------------------------------


def _texts(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [
        {"type": "text", "text": str(p.get("text", ""))}
        for p in (content if isinstance(content, list) else [])
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
    ]


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
