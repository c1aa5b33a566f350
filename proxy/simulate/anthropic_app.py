"""A simulated Anthropic-format provider: `POST {base}/v1/messages`, `.../count_tokens`, models.

Speaks the Messages API as Anthropic (and MiniMax, Kimi) do: a `message` JSON object, or the SSE
sequence `message_start`, `ping`, per block `content_block_start` / `content_block_delta` /
`content_block_stop` (thinking with a closing `signature_delta`, text, tool_use with
`input_json_delta` fragments), `message_delta` with stop_reason and usage, `message_stop`.
A trailing assistant message is a prefill: the reply continues it.

Validation follows the rules a continuation can trip (Anthropic's documented answers): a prefill
is refused while thinking is on, `clear_thinking_*` context edits are refused while thinking is
off, and thinking blocks must carry this provider's signature (`check_signatures`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from proxy.simulate.delivery import Delivery, Frame, FrameKind
from proxy.simulate.faults import invalid_request, model_not_found, unauthorized
from proxy.simulate.prompt_cache import NO_CACHE, CacheUsage
from proxy.simulate.scripts import (
    Reply,
    estimate_input_tokens,
    read_anthropic,
    thinking_signature,
)
from proxy.simulate.wire import json_response, sse_event
from proxy.types import JSONObject, ProviderFormat, StopReason

if TYPE_CHECKING:
    from proxy.simulate.provider import SimulatedProvider

FMT = ProviderFormat.ANTHROPIC


def _usage(reply: Reply, output_tokens: int, cache: CacheUsage) -> JSONObject:
    # `input_tokens` is only what was neither read from nor written to the cache.
    return {
        "input_tokens": max(0, reply.input_tokens - cache.read - cache.written),
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _blocks(reply: Reply) -> list[JSONObject]:
    """The finished content blocks, in the order they are streamed."""
    blocks: list[JSONObject] = []
    if reply.reasoning:
        blocks.append(
            {"type": "thinking", "thinking": reply.reasoning_text, "signature": reply.signature}
        )
    if reply.text:
        blocks.append({"type": "text", "text": reply.full_text})
    for call in reply.tool_calls:
        # A tool call cut short by max_tokens has no parseable input; real Anthropic still ends
        # the block, so the JSON form shows an empty input.
        arguments = "".join(call.fragments)
        tool_input = _loads_or_empty(arguments) if call.complete else {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
    return blocks


def _loads_or_empty(text: str) -> JSONObject:
    value = orjson.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def message_json(reply: Reply, cache: CacheUsage = NO_CACHE) -> JSONObject:
    return {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": _blocks(reply),
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _usage(reply, reply.output_tokens, cache),
    }


def message_frames(reply: Reply, cache: CacheUsage = NO_CACHE) -> list[Frame]:
    start = {
        "type": "message_start",
        "message": {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(reply, 1, cache),
        },
    }
    frames = [
        Frame(sse_event("message_start", start), FrameKind.META),
        Frame(sse_event("ping", {"type": "ping"}), FrameKind.META),
    ]
    index = 0

    def open_block(block: JSONObject) -> None:
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        frames.append(Frame(sse_event("content_block_start", payload), FrameKind.META))

    def delta(body: JSONObject, kind: FrameKind = FrameKind.CONTENT) -> None:
        payload = {"type": "content_block_delta", "index": index, "delta": body}
        frames.append(Frame(sse_event("content_block_delta", payload), kind))

    def close_block() -> None:
        payload = {"type": "content_block_stop", "index": index}
        frames.append(Frame(sse_event("content_block_stop", payload), FrameKind.META))

    if reply.reasoning:
        open_block({"type": "thinking", "thinking": "", "signature": ""})
        for piece in reply.reasoning:
            delta({"type": "thinking_delta", "thinking": piece})
        delta({"type": "signature_delta", "signature": reply.signature}, FrameKind.META)
        close_block()
        index += 1
    if reply.text:
        open_block({"type": "text", "text": ""})
        for piece in reply.text:
            delta({"type": "text_delta", "text": piece})
        close_block()
        index += 1
    for call in reply.tool_calls:
        open_block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        delta({"type": "input_json_delta", "partial_json": ""}, FrameKind.META)
        for fragment in call.fragments:
            delta({"type": "input_json_delta", "partial_json": fragment})
        close_block()
        index += 1
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
        "usage": {"output_tokens": reply.output_tokens},
    }
    frames.append(Frame(sse_event("message_delta", message_delta), FrameKind.FINAL))
    frames.append(Frame(sse_event("message_stop", {"type": "message_stop"}), FrameKind.DONE))
    return frames


def _bad_signature(sim: SimulatedProvider, messages: list[Any]) -> str | None:
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            expected = thinking_signature(sim.name, str(block.get("thinking", "")))
            if block.get("signature") != expected:
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    return None


def _validate(sim: SimulatedProvider, body: Any) -> str | None:
    """The 400 message for a request real Anthropic would refuse, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    if "model" not in body:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    management = body.get("context_management")
    edits = (management.get("edits") if isinstance(management, dict) else None) or []
    for edit in edits if isinstance(edits, list) else ():
        kind = str(edit.get("type", "")) if isinstance(edit, dict) else ""
        if kind.startswith("clear_thinking_") and not thinking_on:
            # What Anthropic answers Claude Code's edit when thinking is off.
            return f"`{kind}` strategy requires `thinking` to be enabled or adaptive"
    try:
        prefill = read_anthropic(body).prefill
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # docs.anthropic.com/en/api/errors: "400 - invalid_request_error: There was an issue
        # with the format or content of your request" (whatever is wrong in it).
        return f"Invalid request body: {exc}"
    if prefill is not None and thinking_on:
        # Extended thinking docs: with thinking on, a final assistant turn must open with its
        # thinking block, so a plain text prefill is refused.
        return (
            f"messages.{len(messages) - 1}.content.0.type: Expected `thinking` or "
            "`redacted_thinking`, but found `text`. When `thinking` is enabled, a final "
            "`assistant` message must start with a thinking block. To avoid this requirement, "
            "disable `thinking`."
        )
    if prefill is not None:
        if not sim.accepts_prefill:
            return (
                "This model does not support assistant message prefill. The conversation must "
                "end with a user message."
            )
        if prefill != prefill.rstrip():
            return "messages: final assistant content cannot end with trailing whitespace"
    if sim.check_signatures:
        return _bad_signature(sim, messages)
    return None


def build_anthropic_app(sim: SimulatedProvider) -> web.Application:
    def gate(request: web.Request, delivery: Delivery) -> web.Response | None:
        # Claude Code sends `x-api-key`; the current SDK sends the key as a Bearer token. The
        # real API takes either.
        if sim.api_key is not None and sim.api_key not in (
            request.headers.get("x-api-key"),
            request.headers.get("Authorization", "").removeprefix("Bearer "),
        ):
            return delivery.reject(unauthorized(FMT))
        if not request.headers.get("anthropic-version"):
            return delivery.reject(invalid_request(FMT, "anthropic-version: header is required"))
        return None

    async def messages(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            delivery = sim.delivery(ex)
            body = await sim.read_body(request, ex)
            refused = gate(request, delivery)
            if refused is not None:
                return refused
            if body is None:
                return delivery.reject(invalid_request(FMT, "There was an error parsing the body"))
            ex.stream = bool(body.get("stream")) if isinstance(body, dict) else False
            fault = sim.plan.next_fault()
            ex.fault = fault.label if fault is not None else None
            early = await delivery.before_headers(fault)
            if early is not None:
                return early
            problem = _validate(sim, body)
            if problem is not None:
                return delivery.reject(invalid_request(FMT, problem))
            model = str(body["model"])
            if sim.models and model not in sim.models:
                return delivery.reject(model_not_found(FMT, model))
            reply = sim.reply_for(body)
            cache = sim.cache_usage(body, reply)
            if ex.stream:
                return await delivery.stream(message_frames(reply, cache), fault)
            return await delivery.json(message_json(reply, cache), fault, reply.output_tokens)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            delivery = sim.delivery(ex)
            body = await sim.read_body(request, ex)
            refused = gate(request, delivery)
            if refused is not None:
                return refused
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return delivery.reject(invalid_request(FMT, "messages: Field required"))
            ex.status = 200
            return json_response({"input_tokens": estimate_input_tokens(body)})

    async def list_models(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            refused = gate(request, sim.delivery(ex))
            if refused is not None:
                return refused
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in sim.models
            ]
            ex.status = 200
            return json_response(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(f"{sim.base_path}/v1/messages", messages)
    app.router.add_post(f"{sim.base_path}/v1/messages/count_tokens", count_tokens)
    app.router.add_get(f"{sim.base_path}/v1/models", list_models)
    return app


def _stop_reason(reply: Reply) -> str:
    """StopReason values are Anthropic's names, but for a refusal's."""
    return "refusal" if reply.stop is StopReason.CONTENT_FILTER else reply.stop.value
