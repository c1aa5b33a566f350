"""A simulated OpenAI-compatible provider: `POST {base}/chat/completions`, `GET {base}/models`.

Speaks what OpenAI (and Z.ai, Cerebras, Groq...) send: `chat.completion` JSON, or SSE of
`chat.completion.chunk` objects with one stable id (role chunk first, content deltas, tool-call
deltas with index/id/name then argument fragments, a finish_reason chunk, a usage chunk when
`stream_options.include_usage`, then `data: [DONE]`). Reasoning models add Z.ai-style
`reasoning_content` deltas before the content.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.simulate.delivery import Frame, FrameKind
from proxy.simulate.faults import invalid_request, model_not_found, unauthorized
from proxy.simulate.prompt_cache import NO_CACHE, CacheUsage
from proxy.simulate.scripts import Reply, read_openai
from proxy.simulate.wire import json_response, sse_data
from proxy.types import JSONObject, ProviderFormat, StopReason

if TYPE_CHECKING:
    from proxy.simulate.provider import SimulatedProvider

FINISH_REASONS: dict[StopReason, str] = {
    StopReason.END_TURN: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "tool_calls",
}


def _usage(reply: Reply, cache: CacheUsage, style: str = "openai") -> JSONObject:
    # `prompt_tokens` counts every prompt token; the cached ones are a part of it.
    usage: JSONObject = {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }
    if style == "deepseek":  # https://api-docs.deepseek.com/guides/kv_cache
        usage["prompt_cache_hit_tokens"] = cache.read
        usage["prompt_cache_miss_tokens"] = reply.input_tokens - cache.read
    elif style == "kimi":  # Moonshot's context caching: a top-level count
        usage["cached_tokens"] = cache.read
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": cache.read}
    usage["completion_tokens_details"] = {"reasoning_tokens": len(reply.reasoning)}
    return usage


def completion_json(
    reply: Reply, created: int, cache: CacheUsage = NO_CACHE, usage_style: str = "openai"
) -> JSONObject:
    message: JSONObject = {
        "role": "assistant",
        "content": reply.full_text if reply.text or not reply.tool_calls else None,
        "refusal": None,
    }
    if reply.refusal:
        message["content"], message["refusal"] = None, reply.full_text
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning_text
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.fragments)},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS[reply.stop],
            }
        ],
        "usage": _usage(reply, cache, usage_style),
    }


def completion_frames(
    reply: Reply,
    created: int,
    include_usage: bool,
    cache: CacheUsage = NO_CACHE,
    usage_style: str = "openai",
) -> list[Frame]:
    def chunk(delta: JSONObject, finish: str | None = None) -> bytes:
        payload: JSONObject = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return sse_data(payload)

    said = "refusal" if reply.refusal else "content"
    role: JSONObject = {
        "role": "assistant",
        "content": "" if reply.text and not reply.refusal else None,
    }
    frames = [Frame(chunk(role), FrameKind.META)]
    frames += [Frame(chunk({"reasoning_content": r}), FrameKind.CONTENT) for r in reply.reasoning]
    frames += [Frame(chunk({said: t}), FrameKind.CONTENT) for t in reply.text]
    for index, call in enumerate(reply.tool_calls):
        start = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(Frame(chunk({"tool_calls": [start]}), FrameKind.META))
        frames += [
            Frame(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                FrameKind.CONTENT,
            )
            for fragment in call.fragments
        ]
    frames.append(Frame(chunk({}, FINISH_REASONS[reply.stop]), FrameKind.FINAL))
    if include_usage:
        usage_chunk = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_sim",
            "choices": [],
            "usage": _usage(reply, cache, usage_style),
        }
        frames.append(Frame(sse_data(usage_chunk), FrameKind.FINAL))
    frames.append(Frame(b"data: [DONE]\n\n", FrameKind.DONE))
    return frames


def _bearer_ok(request: web.Request, expected: str | None) -> bool:
    if expected is None:
        return True
    return request.headers.get("Authorization", "") == f"Bearer {expected}"


def _validate(sim: SimulatedProvider, body: Any) -> str | None:
    """The 400 message for a request a real provider would refuse, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "[] is too short - 'messages'"
    try:
        read_openai(body)  # what the reply is built from
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A body that does not fit the request schema is a 400 invalid_request_error, whatever
        # is wrong in it (platform.openai.com/docs/guides/error-codes: "400 - Invalid request").
        return f"Invalid request body: {exc}"
    return _prefill_problem(sim.prefill_style, body, messages)


PREFILL_STYLES = ("assistant", "prefix", "partial", "continue_final_message")
_MESSAGE_FLAGS = ("prefix", "partial")


def _prefill_problem(accepted: str | None, body: JSONObject, messages: list[Any]) -> str | None:
    """How a provider that takes only the `accepted` prefill style (or none) answers a request
    in another one. The styles: a plain trailing assistant message (OpenRouter, llama.cpp),
    `"prefix": true` on it (DeepSeek beta, Mistral), `"partial": true` (Moonshot), or
    `continue_final_message: true` with `add_generation_prompt: false` (vLLM, SGLang)."""
    for i, message in enumerate(messages):
        for flag in _MESSAGE_FLAGS:
            if isinstance(message, dict) and flag in message and accepted != flag:
                # Strict schema validation, as OpenAI itself answers unknown message fields.
                return (
                    f"Additional properties are not allowed ('{flag}' was unexpected) - "
                    f"'messages.{i}'"
                )
    if "continue_final_message" in body and accepted != "continue_final_message":
        return "Unrecognized request argument supplied: continue_final_message"
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if last.get("role") != "assistant":
        if body.get("continue_final_message"):
            return "continue_final_message is set but the final message is not an assistant one"
        return None
    if accepted is None:
        return (
            "This model does not support assistant message prefill. The conversation must end "
            "with a user or tool message."
        )
    if accepted in _MESSAGE_FLAGS and last.get(accepted) is not True:
        return (
            "The last message must be a user message, or an assistant message with "
            f"{accepted} mode on ('{accepted}': true)"
        )
    if accepted == "continue_final_message":
        if body.get("continue_final_message") is not True:
            return "a final assistant message is continued only with continue_final_message"
        if body.get("add_generation_prompt", True) is not False:
            return "continue_final_message and add_generation_prompt cannot both be true"
    return None


def build_openai_app(sim: SimulatedProvider) -> web.Application:
    fmt = ProviderFormat.OPENAI

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            delivery = sim.delivery(ex)
            body = await sim.read_body(request, ex)
            if not _bearer_ok(request, sim.api_key):
                return delivery.reject(unauthorized(fmt))
            if body is None:
                return delivery.reject(invalid_request(fmt, "We could not parse the JSON body."))
            ex.stream = bool(body.get("stream")) if isinstance(body, dict) else False
            fault = sim.plan.next_fault()
            ex.fault = fault.label if fault is not None else None
            early = await delivery.before_headers(fault)
            if early is not None:
                return early
            problem = _validate(sim, body)
            if problem is not None:
                return delivery.reject(invalid_request(fmt, problem))
            model = str(body.get("model", ""))
            if sim.models and model not in sim.models:
                return delivery.reject(model_not_found(fmt, model))
            reply = sim.reply_for(body)
            cache = sim.cache_usage(body, reply)
            created = int(time.time())
            if ex.stream:
                options = body.get("stream_options") or {}
                include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
                frames = completion_frames(reply, created, include_usage, cache, sim.usage_style)
                return await delivery.stream(frames, fault)
            answer = completion_json(reply, created, cache, sim.usage_style)
            return await delivery.json(answer, fault, reply.output_tokens)

    async def list_models(request: web.Request) -> web.StreamResponse:
        async with sim.log.open(request) as ex:
            if not _bearer_ok(request, sim.api_key):
                return sim.delivery(ex).reject(unauthorized(fmt))
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": sim.name} for m in sim.models
            ]
            ex.status = 200
            return json_response({"object": "list", "data": data})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(f"{sim.base_path}/chat/completions", chat_completions)
    app.router.add_get(f"{sim.base_path}/models", list_models)
    return app
