"""A streaming request's life, owned by one object: `StreamLife`.

It walks the chain up to the commit point (the first content event; nothing has reached the
client before it), then hands out client-safe events, recovers when the current upstream fails,
and ends honestly. After the commit point it never raises anything but `StreamCutError`: every
other outcome (a continuation target answering 400 or a refusal, the chain running out) becomes
that one error, which the writer turns into the client dialect's own error event.

When the current upstream fails it picks how to go on:

- nothing visible sent yet (only a held tool call, or nothing): a clean restart on the next
  target; the client never notices.
- only reasoning sent: restart on the next target, hiding its reasoning, so thoughts are never
  shown twice.
- visible text sent: continue on the next target that accepts an assistant prefill, sending the
  original request plus the partial answer as a trailing assistant message in the target's own
  prefill style (`PrefillStyle`), without what a prefill may not carry (thinking, and the
  context edits that need thinking), and stream only what follows. Targets that do not accept a
  prefill are skipped (and never sent one).
- a tool call already sent: the answer cannot be continued faithfully; honest error.

An upstream error after its finish event does not undo a complete answer. A stream is reported
to health as a success only when it finishes; a failure after the commit point counts like any
other. Tool calls are held until complete (the next event of another kind, or the finish), so a
failure inside a call's arguments is invisible. Tool-call indexes continue across upstreams, and
after a takeover a `MessageStart` naming the new model is passed on (encoders whose wire format
names the model per chunk switch to it; the others keep their first one).

Each upstream try enters the walk's ledger once, when it ends; until then `attempts()` shows it
as `streaming`. The usage the client sees describes one answer to one prompt: the prompt (input
and cache counters) as the first try that reported it counted it, and the output of every try
whose output reached the client, added up (clients such as Claude Code size their context from
these fields, and a continuation's prompt repeats the original one). What every try cost,
including restarts the client never saw, is `StreamReport.billed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable

from proxy.capabilities import PrefillStyle
from proxy.errors import ChainExhaustedError, ClientFacingError, StreamCutError, UpstreamError
from proxy.fallback import FallbackRunner, Job, Plan, Walk, close_stream
from proxy.frozen import frozen, replace
from proxy.providers.base import EventBatch, UpstreamRequest
from proxy.tokens import tokens_for_chars
from proxy.types import (
    Attempt,
    ClientAPI,
    CustomToolCall,
    Finish,
    JSONObject,
    MessageStart,
    ProviderFormat,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    StreamEvent,
    Target,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

log = logging.getLogger("llmproxy.fallback")

REASONING_EVENTS = (ReasoningDelta, ReasoningSignature, RedactedReasoning)
# Continuations must not think again (Anthropic also rejects a prefill with thinking enabled).
REASONING_REQUEST_FIELDS = ("thinking", "reasoning_effort", "reasoning")
# Anthropic context edits that are refused without thinking ("`clear_thinking_20251015`
# strategy requires `thinking` to be enabled"); Claude Code sends one on every request.
THINKING_EDIT_PREFIX = "clear_thinking_"


@frozen
class StreamReport:
    """What a stream's life came to so far: a read-only snapshot for logs and metrics."""

    attempts: tuple[Attempt, ...]
    committed: Target | None
    """The target whose first content was the commit point (named in the response headers)."""
    served: Target | None
    """The target that wrote the last part of the answer."""
    usage: Usage
    """What the client was told: the prompt once, the output of the answer's parts added up."""
    billed: Usage
    """Every try's usage added up (a cut try's output estimated from what it streamed): what
    the request cost."""
    elapsed_ms: float
    finished: bool
    fallbacks: int = 0
    """Tries given up on before the committed one (skips included)."""
    takeovers: int = 0
    """Tries that carried on the answer after an earlier one was cut past the commit point."""


async def _no_events() -> AsyncIterator[EventBatch]:
    return
    yield  # an async generator that yields nothing


class StreamLife:
    """One streaming request, from its first attempt to its last event.

    `open()` walks to the commit point (raising `ClientFacingError` or `ChainExhaustedError`
    before it); `events()` then yields the answer and raises only `StreamCutError`. `report()`
    is a snapshot at any time.
    """

    def __init__(self, runner: FallbackRunner, job: Job) -> None:
        self._runner = runner
        self._walk = Walk(runner, job)
        self._job = job
        self._created = time.monotonic()
        self._plan: Plan | None = None
        self._committed: Target | None = None
        self._head: list[StreamEvent] = []
        self._upstream: AsyncIterator[EventBatch] = _no_events()
        self._started = self._created
        self._ttft_ms = 0.0
        self._settled = True  # the current target's health has heard the outcome
        self._finished = False
        self._announced_model = ""
        self._held_call: list[StreamEvent] = []
        self._text: list[str] = []
        self._sent_reasoning = False
        self._sent_start = False
        self._tool_calls_sent = 0
        self._index_offset = 0
        self._hide_reasoning = False
        self._strip_leading_space = False
        self._prompt: Usage | None = None  # the prompt's counters, once an ended try gave them
        self._answer_done = Usage()  # output of ended tries whose output reached the client
        self._billed_done = Usage()  # everything ended tries used
        self._usage_now = Usage()
        self._attempt_chars = 0  # visible and reasoning text this attempt produced
        self._attempt_sent = False  # some of this attempt's output reached the client
        self._fallbacks = 0
        self._takeovers = 0

    # --- read-outs ------------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        """The committed target (after `open()`)."""
        if self._committed is None:
            raise RuntimeError("the stream has not been opened")
        return self._committed

    @property
    def served(self) -> Target | None:
        return self._plan.target if self._plan is not None else None

    def attempts(self) -> tuple[Attempt, ...]:
        """Every try so far: the ended ones as the ledger has them, then the one still
        streaming, if any (at the commit point: the committed try)."""
        settled = self._walk.ledger.snapshot()
        if self._settled or self._plan is None:
            return settled
        live = Attempt(self._plan.target, 200, None, self._ttft_ms, streaming=True)
        return (*settled, live)

    def report(self) -> StreamReport:
        return StreamReport(
            attempts=self.attempts(),
            committed=self._committed,
            served=self.served,
            usage=self._client_usage(self._usage_now),
            billed=self._billed_done + self._usage_now,
            elapsed_ms=(time.monotonic() - self._created) * 1000.0,
            finished=self._finished,
            fallbacks=self._fallbacks,
            takeovers=self._takeovers,
        )

    # --- the life -------------------------------------------------------------------------------

    async def open(self) -> Target:
        """Walk the chain until a target produces its first content: the commit point."""
        walk = self._walk
        if walk.options.buffer:
            plan, events = await walk.first_success(self._runner.read_whole_stream)
            self._head, self._upstream = events, _no_events()
        else:
            plan, (self._head, self._upstream) = await walk.first_success(
                self._read_head, settles=False
            )
            self._settled = False
        self._plan, self._committed = plan, plan.target
        self._announced_model = plan.target.model
        self._fallbacks = sum(1 for a in walk.ledger.snapshot() if not a.ok)
        return plan.target

    async def _read_head(
        self, plan: Plan, request: UpstreamRequest
    ) -> tuple[list[StreamEvent], AsyncIterator[EventBatch]]:
        """One try up to its first content, timed: the try that succeeds starts this part of
        the stream (its time to first content, its start for the latency at its end)."""
        started = time.monotonic()
        head = await self._runner.read_stream_head(plan, request)
        self._started, self._ttft_ms = started, (time.monotonic() - started) * 1000.0
        return head

    async def events(self) -> AsyncIterator[StreamEvent]:
        batches = self.batches()
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def batches(self) -> AsyncGenerator[list[StreamEvent], None]:
        """`events()` grouped as the upstream's reads delivered them (never an empty group), so
        a writer can send each group at once."""
        try:
            while True:
                try:
                    head, self._head = self._head, []
                    if out := self._filter_all(head):
                        yield out
                    async for batch in self._upstream:
                        if out := self._filter_all(batch):
                            yield out
                    self._settle_success()
                    return
                except UpstreamError as error:
                    if self._finished:
                        # The answer was complete: a broken connection after it costs nothing.
                        log.info("%s: error after the finish ignored: %s", self.served, error)
                        self._settle_success()
                        return
                    plan = self._current()
                    self._walk.record_failure(plan, error, self._started)
                    self._settled = True
                    await close_stream(self._upstream)
                    await self._recover(error)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the upstream; a stream left before its end (the client went away) reports
        no outcome, but frees its target's half-open probe slot."""
        await close_stream(self._upstream)
        if not self._settled and self._plan is not None:
            self._settled = True
            self._walk.release(self._plan, self._started)

    def _current(self) -> Plan:
        if self._plan is None:
            raise RuntimeError("the stream has not been opened")
        return self._plan

    def _settle_success(self) -> None:
        if not self._settled:
            self._settled = True
            self._walk.record_stream_success(self._current(), self._started, self._ttft_ms)

    def _filter_all(self, events: list[StreamEvent]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for event in events:
            out += self._filter(event)
        return out

    def _filter(self, event: StreamEvent) -> Iterable[StreamEvent]:
        """Turn one upstream event into what the client may see now."""
        if self._held_call and isinstance(event, ToolCallDelta):
            held_start = self._held_call[0]
            assert isinstance(held_start, ToolCallStart)
            if event.index + self._index_offset == held_start.index:
                self._held_call.append(ToolCallDelta(held_start.index, event.arguments))
                return ()
        out = self._release_call()
        # The classes are disjoint: text, by far the most common, is tested first.
        if isinstance(event, TextDelta):
            text = event.text
            if self._strip_leading_space:
                text = text.lstrip()
                self._strip_leading_space = not text
            if text:
                self._attempt_chars += len(text)
                self._attempt_sent = True
                self._text.append(text)
                out.append(event if text is event.text else replace(event, text=text))
        elif isinstance(event, MessageStart):
            if not self._sent_start:
                self._sent_start = True
                out.append(event)
            elif self._current().target.model != self._announced_model:
                self._announced_model = self._current().target.model
                out.append(MessageStart(event.id, self._announced_model))
        # An event passes on unchanged (not copied) unless an earlier attempt changes it.
        elif isinstance(event, UsageUpdate):
            self._usage_now = event.usage
            out.append(UsageUpdate(self._client_usage(event.usage)))
        elif isinstance(event, ToolCallStart):
            self._held_call = [
                ToolCallStart(event.index + self._index_offset, event.id, event.name)
                if self._index_offset
                else event
            ]
        elif isinstance(event, ToolCallDelta):
            out.append(
                ToolCallDelta(event.index + self._index_offset, event.arguments)
                if self._index_offset
                else event
            )
        elif isinstance(event, CustomToolCall):  # whole already: nothing to hold back
            out.append(replace(event, index=event.index + self._index_offset))
            self._tool_calls_sent += 1
            self._attempt_sent = True
        elif isinstance(event, REASONING_EVENTS):
            if isinstance(event, ReasoningDelta):
                self._attempt_chars += len(event.text)
            if not self._hide_reasoning:
                self._sent_reasoning = self._attempt_sent = True
                out.append(event)
        elif isinstance(event, Finish):
            self._finished = True
            out.append(event)
        return out

    def _release_call(self) -> list[StreamEvent]:
        if not self._held_call:
            return []
        released, self._held_call = self._held_call, []
        self._tool_calls_sent += 1
        self._attempt_sent = True
        return released

    async def _recover(self, error: UpstreamError) -> None:
        """Open the next target that can carry on, or raise the honest error."""
        failed = self._current().target
        self._held_call = []
        partial = "".join(self._text)
        body = self._job.body
        accept = None
        if self._tool_calls_sent:
            raise StreamCutError(
                f"{error.message}; the answer already contains a tool call, so it cannot be "
                "continued on another provider",
                target=failed,
            ) from error
        if partial:
            prefill = partial.rstrip()
            self._strip_leading_space = prefill != partial
            body = continuation_body(self._job.client_format, body, prefill)
            self._hide_reasoning = True
            capabilities = self._runner.config.capabilities

            def accept(plan: Plan) -> str | None:
                style = capabilities(plan.target).prefill
                if style and (
                    style is PrefillStyle.ASSISTANT or plan.provider.format is ProviderFormat.OPENAI
                ):
                    return None
                return "does not accept an assistant prefill"

        elif self._sent_reasoning:
            self._hide_reasoning = True
        self._close_attempt_usage()
        self._index_offset = self._tool_calls_sent
        what = "continue the answer" if partial else "take over the answer"
        try:
            plan, (head, rest) = await self._walk.first_success(
                self._runner.read_stream_head,
                body=body,
                accept=accept,
                settles=False,
                prefill=bool(partial),
            )
        except ChainExhaustedError as exhausted:
            raise StreamCutError(
                f"{error.message}; no remaining target could {what} "
                f"({len(partial)} characters were already sent)",
                target=failed,
            ) from exhausted
        except ClientFacingError as refused:
            # A refusal or an invalid request from the target asked to carry on: the client
            # cannot be handed that answer any more, only the stream's honest end.
            raise StreamCutError(
                f"{error.message}; {refused.error.target} could not {what}: "
                f"{refused.error.message[:200]}",
                target=failed,
            ) from refused
        self._plan, self._head, self._upstream = plan, head, rest
        self._settled = False
        self._takeovers += 1

    def _client_usage(self, now: Usage) -> Usage:
        """The answer's usage for the client, given the current try's latest."""
        prompt = self._prompt or now
        return Usage(
            input_tokens=prompt.input_tokens,
            output_tokens=self._answer_done.output_tokens + now.output_tokens,
            cache_read_input_tokens=prompt.cache_read_input_tokens,
            cache_creation_input_tokens=prompt.cache_creation_input_tokens,
            reasoning_tokens=self._answer_done.reasoning_tokens + now.reasoning_tokens,
        )

    def _close_attempt_usage(self) -> None:
        """Book a cut try's usage. A cut stream rarely reports its output (OpenAI-format usage
        comes last, Anthropic's `message_start` says 1), so it is at least what the try
        streamed, at about four characters per token."""
        now = self._usage_now
        used = replace(
            now, output_tokens=max(now.output_tokens, tokens_for_chars(self._attempt_chars))
        )
        self._billed_done = self._billed_done + used
        if self._prompt is None and _prompt_of(used) != Usage():
            self._prompt = _prompt_of(used)
        if self._attempt_sent:
            self._answer_done = self._answer_done + Usage(
                output_tokens=used.output_tokens, reasoning_tokens=used.reasoning_tokens
            )
        self._usage_now = Usage()
        self._attempt_chars = 0
        self._attempt_sent = False


def _prompt_of(usage: Usage) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
    )


def continuation_body(fmt: ClientAPI, body: JSONObject, prefill: str) -> JSONObject:
    """The client's request plus the partial answer as a trailing assistant message."""
    continued = {k: v for k, v in body.items() if k not in REASONING_REQUEST_FIELDS}
    if "context_management" in body:
        context = _without_thinking_edits(body["context_management"])
        if context is None:
            del continued["context_management"]
        else:
            continued["context_management"] = context
    if fmt is ClientAPI.RESPONSES:
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
    if fmt is ClientAPI.OPENAI:
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


def _without_thinking_edits(context: object) -> object | None:
    """Anthropic's `context_management` minus the edits that require thinking (None if
    nothing is left)."""
    if not isinstance(context, dict) or not isinstance(context.get("edits"), list):
        return context
    edits = [
        e
        for e in context["edits"]
        if not (isinstance(e, dict) and str(e.get("type", "")).startswith(THINKING_EDIT_PREFIX))
    ]
    if edits:
        return {**context, "edits": edits}
    rest = {k: v for k, v in context.items() if k != "edits"}
    return rest or None
