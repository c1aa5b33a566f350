"""Streaming failover after the commit point: one well-formed answer, or an honest error.

`RecoveringStream` sits between the upstream attempts and the client's stream encoder. It keeps
a ledger of what the client has seen and, when the current upstream fails, picks how to go on:

- nothing visible sent yet (only a held tool call, or nothing): a clean restart on the next
  target; the client never notices.
- only reasoning sent: restart on the next target, hiding its reasoning, so thoughts are never
  shown twice.
- visible text sent: continue on the next target that accepts an assistant prefill, sending the
  original request plus the partial answer as a trailing assistant message, and stream only what
  follows. Targets that do not accept a prefill are skipped (and never sent one).
- a tool call already sent: the answer cannot be continued faithfully; honest error.

Tool calls are held until complete (the next event of another kind, or the finish), so a failure
inside a call's arguments is invisible. Tool-call indexes continue across upstreams and usage is
added up over the attempts that produced the answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from proxy.errors import ChainExhaustedError, StreamCutError, UpstreamError
from proxy.fallback import Plan, Walk, close_stream
from proxy.tokens import tokens_for_chars
from proxy.types import (
    Finish,
    JSONObject,
    MessageStart,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
    WireFormat,
)

REASONING_EVENTS = (ReasoningDelta, ReasoningSignature, RedactedReasoning)
# Continuations must not think again (Anthropic also rejects a prefill with thinking enabled).
REASONING_REQUEST_FIELDS = ("thinking", "reasoning_effort", "reasoning")


class RecoveringStream:
    def __init__(
        self,
        walk: Walk,
        plan: Plan,
        head: list[StreamEvent],
        rest: AsyncIterator[StreamEvent],
    ) -> None:
        self._walk = walk
        self._plan = plan
        self._head = head
        self._upstream = rest
        self._started = time.monotonic()
        self._held_call: list[StreamEvent] = []
        self._text: list[str] = []
        self._sent_reasoning = False
        self._sent_start = False
        self._tool_calls_sent = 0
        self._index_offset = 0
        self._hide_reasoning = False
        self._strip_leading_space = False
        self._usage_done = Usage()  # usage of earlier attempts that produced part of the answer
        self._usage_now = Usage()
        self._attempt_chars = 0  # visible and reasoning text this attempt produced

    async def events(self) -> AsyncIterator[StreamEvent]:
        try:
            while True:
                try:
                    for event in self._head:
                        for out in self._filter(event):
                            yield out
                    self._head = []
                    async for event in self._upstream:
                        for out in self._filter(event):
                            yield out
                    return
                except UpstreamError as error:
                    self._walk.record_stream_failure(self._plan, error, self._started)
                    await self._close_upstream()
                    await self._recover(error)
        finally:
            await self._close_upstream()

    async def _close_upstream(self) -> None:
        await close_stream(self._upstream)

    def _filter(self, event: StreamEvent) -> Iterable[StreamEvent]:
        """Turn one upstream event into what the client may see now."""
        if isinstance(event, ToolCallDelta) and self._held_call:
            held_start = self._held_call[0]
            assert isinstance(held_start, ToolCallStart)
            if event.index + self._index_offset == held_start.index:
                self._held_call.append(ToolCallDelta(held_start.index, event.arguments))
                return ()
        out = self._release_call()
        if isinstance(event, MessageStart):
            if not self._sent_start:
                self._sent_start = True
                out.append(event)
        elif isinstance(event, UsageUpdate):
            self._usage_now = event.usage
            out.append(UsageUpdate(self._usage_done + event.usage))
        elif isinstance(event, ToolCallStart):
            self._held_call = [
                ToolCallStart(event.index + self._index_offset, event.id, event.name)
            ]
        elif isinstance(event, ToolCallDelta):
            out.append(ToolCallDelta(event.index + self._index_offset, event.arguments))
        elif isinstance(event, TextDelta):
            text = event.text
            if self._strip_leading_space:
                text = text.lstrip()
                self._strip_leading_space = not text
            if text:
                self._attempt_chars += len(text)
                self._text.append(text)
                out.append(TextDelta(text))
        elif isinstance(event, REASONING_EVENTS):
            if isinstance(event, ReasoningDelta):
                self._attempt_chars += len(event.text)
            if not self._hide_reasoning:
                self._sent_reasoning = True
                out.append(event)
        elif isinstance(event, Finish):
            out.append(event)
        return out

    def _release_call(self) -> list[StreamEvent]:
        if not self._held_call:
            return []
        released, self._held_call = self._held_call, []
        self._tool_calls_sent += 1
        return released

    async def _recover(self, error: UpstreamError) -> None:
        """Open the next target that can carry on, or raise the honest error."""
        self._held_call = []
        partial = "".join(self._text)
        body = self._walk.job.body
        accept = None
        if self._tool_calls_sent:
            raise StreamCutError(
                f"{error.message}; the answer already contains a tool call, so it cannot be "
                "continued on another provider",
                target=self._plan.target,
            ) from error
        if partial:
            prefill = partial.rstrip()
            self._strip_leading_space = prefill != partial
            body = continuation_body(self._walk.job.client_format, body, prefill)
            self._hide_reasoning = True

            capabilities = self._walk.runner.config.capabilities

            def accept(plan: Plan) -> str | None:
                if capabilities(plan.target).prefill:
                    return None
                return "does not accept an assistant prefill"

        elif self._sent_reasoning:
            self._hide_reasoning = True
        self._usage_done = self._usage_done + self._attempt_usage()
        self._usage_now = Usage()
        self._attempt_chars = 0
        self._index_offset = self._tool_calls_sent
        try:
            plan, (head, rest) = await self._walk.first_success(
                self._walk.runner.read_stream_head, body=body, accept=accept
            )
        except ChainExhaustedError as exhausted:
            what = "continue the answer" if partial else "take over the answer"
            raise StreamCutError(
                f"{error.message}; no remaining target could {what} "
                f"({len(partial)} characters were already sent)",
                target=self._plan.target,
            ) from exhausted
        self._plan, self._head, self._upstream = plan, head, rest
        self._started = time.monotonic()


    def _attempt_usage(self) -> Usage:
        """What the failed attempt produced. A cut stream never reports its usage, so its output
        is estimated from the text it streamed (about four characters per token)."""
        if self._usage_now != Usage():
            return self._usage_now
        return Usage(output_tokens=tokens_for_chars(self._attempt_chars))


def continuation_body(fmt: WireFormat, body: JSONObject, prefill: str) -> JSONObject:
    """The client's request plus the partial answer as a trailing assistant message."""
    continued = {k: v for k, v in body.items() if k not in REASONING_REQUEST_FIELDS}
    if fmt == WireFormat.RESPONSES:
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        continued["input"] = [
            *(items or []),
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": prefill}],
            },
        ]
        return continued
    messages = list(body.get("messages") or [])
    last = messages[-1] if messages else None
    if fmt == WireFormat.OPENAI:
        if (
            isinstance(last, dict)
            and last.get("role") == "assistant"
            and isinstance(last.get("content"), str)
            and not last.get("tool_calls")
        ):
            messages[-1] = {**last, "content": last["content"] + prefill}
        else:
            messages.append({"role": "assistant", "content": prefill})
    elif isinstance(last, dict) and last.get("role") == "assistant":
        content = last.get("content")
        blocks = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        )
        messages[-1] = {**last, "content": [*blocks, {"type": "text", "text": prefill}]}
    else:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": prefill}]})
    continued["messages"] = messages
    return continued
