"""The Responses SSE of one simulated codex answer, event by event as chatgpt.com streams it:
`response.created`, per item `output_item.added`, the deltas, the `*.done` summaries that
repeat the content, `output_item.done`, and `response.completed` with the output and usage."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from proxy.simulate.delivery import Frame, FrameKind
from proxy.simulate.prompt_cache import NO_CACHE, CacheUsage
from proxy.simulate.scripts import Reply, chunk
from proxy.simulate.wire import digest, sse_event
from proxy.types import JSONObject, StopReason


def custom_tool_names(body: JSONObject) -> frozenset[str]:
    tools = body.get("tools")
    return frozenset(
        str(t.get("name"))
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and t.get("type") == "custom"
    )


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
