"""One simulated upstream provider: its configuration, fault plan, request log and server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from proxy.frozen import frozen
from proxy.simulate.anthropic_app import build_anthropic_app
from proxy.simulate.codex_account import TOKEN_PATH, CodexAccount
from proxy.simulate.codex_app import build_codex_app, chat_view
from proxy.simulate.delivery import Delivery, Timing
from proxy.simulate.faults import FaultPlan
from proxy.simulate.openai_app import PREFILL_STYLES, build_openai_app
from proxy.simulate.prompt_cache import (
    DEFAULT_TTL,
    MIN_CACHEABLE_TOKENS,
    USAGE_STYLES,
    CacheUsage,
    PromptCache,
)
from proxy.simulate.records import Exchange, RequestLog, RequestRecord
from proxy.simulate.scripts import DEFAULT_CHUNK_CHARS, Reply, plan_reply
from proxy.types import JSONObject, ProviderFormat

DEFAULT_BASE_PATHS = {
    ProviderFormat.OPENAI: "/v1",
    ProviderFormat.ANTHROPIC: "/anthropic",
    ProviderFormat.CODEX: "/backend-api/codex",
}


@frozen
class _Running:
    runner: web.AppRunner
    host: str
    port: int
    stop: asyncio.Event


class SimulatedProvider:
    """A fake upstream speaking one wire format on 127.0.0.1.

    `models` empty means any model is served; otherwise an unknown model gets the provider's 404.
    `accepts_prefill` defaults to True for Anthropic and False for OpenAI format (a trailing
    assistant message is then a 400). An OpenAI-format sim may instead take exactly one
    `prefill_style` (`assistant`, `prefix`, `partial`, `continue_final_message`) and refuse the
    others, as the providers documenting each style do. `reasoning` makes the model think first
    (Z.ai-style `reasoning_content`, or Anthropic thinking blocks signed for this provider; with
    `check_signatures` an Anthropic sim rejects thinking blocks it did not sign). Latency
    (`first_token_delay`, `chunk_delay`) and `plan` can be changed while it runs. `burst` sends a
    stream without a fault in one write, as a TCP segment carrying many events arrives.

    Every completion request (`chat/completions`, `messages`) that passes the key check takes one
    entry from `plan`, before its body is validated; `models` and `count_tokens` never fail.
    An Anthropic sim takes its key from `x-api-key` or `Authorization: Bearer` (Claude Code sends
    the first, the current SDK the second) and requires an `anthropic-version` header.
    """

    def __init__(
        self,
        name: str,
        format: ProviderFormat | str = ProviderFormat.OPENAI,
        models: Iterable[str] = (),
        *,
        api_key: str | None = None,
        reasoning: bool = False,
        accepts_prefill: bool | None = None,
        prefill_style: str | None = None,
        plan: FaultPlan | None = None,
        chunk_delay: float = 0.0,
        first_token_delay: float = 0.0,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        text_before_tool: bool = False,
        parallel_tool_calls: int = 1,
        check_signatures: bool = True,
        base_path: str | None = None,
        persona: str | None = None,
        extra_text: str = "",
        cache_ttl: float = DEFAULT_TTL,
        cache_min_tokens: int = MIN_CACHEABLE_TOKENS,
        burst: bool = False,
        usage_style: str = "openai",
    ) -> None:
        self.format = ProviderFormat(format)
        if self.format not in DEFAULT_BASE_PATHS:
            raise ValueError(
                f"simulated providers speak openai, anthropic or codex, not {format!r}"
            )
        self.name = name
        # The name replies are signed with: two providers serving the same model with one
        # persona give identical answers, so a continuation on the second one can be checked.
        self.persona = persona or name
        self.extra_text = extra_text  # appended to every plain answer (long-answer tests)
        self.models = tuple(models)
        self.api_key = api_key
        self.reasoning = reasoning
        anthropic = self.format is ProviderFormat.ANTHROPIC
        accepts = accepts_prefill if accepts_prefill is not None else anthropic
        # The one prefill style this provider takes (None: it continues nothing).
        self.prefill_style: str | None = prefill_style or ("assistant" if accepts else None)
        chat = self.format is ProviderFormat.OPENAI
        if self.prefill_style not in (None, *PREFILL_STYLES) or (
            not chat and self.prefill_style not in (None, "assistant")
        ):
            raise ValueError(f"no such prefill style for {self.format}: {prefill_style!r}")
        self.plan = plan if plan is not None else FaultPlan()
        self.chunk_delay = chunk_delay
        self.first_token_delay = first_token_delay
        self.burst = burst
        self.chunk_chars = chunk_chars
        self.text_before_tool = text_before_tool
        self.parallel_tool_calls = parallel_tool_calls
        self.check_signatures = check_signatures
        self.base_path = (base_path or DEFAULT_BASE_PATHS[self.format]).rstrip("/")
        self.log = RequestLog()
        # Cached tokens for prefixes seen recently, in the format's own usage fields.
        self.prompt_cache = PromptCache(cache_ttl, cache_min_tokens)
        # How an OpenAI-format provider reports cached tokens: OpenAI's
        # `prompt_tokens_details`, DeepSeek's `prompt_cache_hit_tokens` or Kimi's `cached_tokens`.
        if usage_style not in USAGE_STYLES or (usage_style != "openai" and not chat):
            raise ValueError(f"no such usage style for {self.format}: {usage_style!r}")
        self.usage_style = usage_style
        # The ChatGPT account a codex provider serves (its tokens); unused by other formats.
        self.account = CodexAccount(f"acct-{name}")
        self._running: _Running | None = None

    @property
    def accepts_prefill(self) -> bool:
        return self.prefill_style is not None

    def __repr__(self) -> str:
        where = self.base_url if self._running else "stopped"
        return f"SimulatedProvider({self.name!r}, {self.format.value}, {where})"

    # --- what tests read ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL a provider config needs (`.../v1` or `.../anthropic` by default)."""
        return self.origin + self.base_path

    @property
    def origin(self) -> str:
        if self._running is None:
            raise RuntimeError(f"simulated provider {self.name!r} is not running")
        return f"http://{self._running.host}:{self._running.port}"

    @property
    def token_endpoint(self) -> str:
        """A codex provider's OAuth token endpoint (its `token_endpoint` config key)."""
        return self.origin + TOKEN_PATH

    @property
    def port(self) -> int:
        if self._running is None:
            raise RuntimeError(f"simulated provider {self.name!r} is not running")
        return self._running.port

    @property
    def requests(self) -> tuple[RequestRecord, ...]:
        """Finished requests, in arrival order (in-flight ones appear when they end)."""
        return self.log.records

    @property
    def in_flight(self) -> int:
        """Requests received whose handler has not ended yet."""
        return self.log.in_flight

    def counts(self) -> Counter[str]:
        """How many finished requests ended each way: `{"ok": 3, "Status(429)": 1, ...}`."""
        return self.log.counts()

    def reply_for(self, body: JSONObject) -> Reply:
        """The reply this provider gives to `body` (pure: same body, same reply)."""
        if self.format is ProviderFormat.CODEX:  # planned like the same question in chat form
            return plan_reply(
                chat_view(body),
                ProviderFormat.OPENAI,
                provider=self.persona,
                reasoning=self.reasoning,
                chunk_chars=self.chunk_chars,
                text_before_tool=self.text_before_tool,
                parallel_tool_calls=self.parallel_tool_calls,
                extra_text=self.extra_text,
            )
        return plan_reply(
            body,
            self.format,
            provider=self.persona,
            reasoning=self.reasoning,
            chunk_chars=self.chunk_chars,
            text_before_tool=self.text_before_tool,
            parallel_tool_calls=self.parallel_tool_calls,
            extra_text=self.extra_text,
        )

    def cache_usage(self, body: JSONObject, reply: Reply) -> CacheUsage:
        """How much of this request's prompt the provider's cache served (and now holds)."""
        return self.prompt_cache.account(body, self.format, reply.input_tokens)

    def expected_text(self, body: JSONObject) -> str:
        return self.reply_for(body).full_text

    async def wait_for_requests(self, count: int, within: float = 2.0) -> tuple[RequestRecord, ...]:
        """Wait until `count` requests have ended (a cancelled upstream ends a moment after the
        client gives up). Polls, so it works whichever thread serves the provider."""
        deadline = time.monotonic() + within
        while len(self.log.records) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: {len(self.log.records)} of {count} requests ended"
                )
            await asyncio.sleep(0.005)
        return self.log.records

    # --- what handlers use -------------------------------------------------------------------

    def delivery(self, ex: Exchange) -> Delivery:
        if self._running is None:
            raise RuntimeError("handler called on a stopped simulator")
        return Delivery(
            ex,
            self.format,
            self._running.stop,
            Timing(self.first_token_delay, self.chunk_delay, self.burst),
        )

    @staticmethod
    async def read_body(request: web.Request, ex: Exchange) -> Any:
        """The parsed JSON body (also recorded), or None when it is not JSON."""
        raw = await request.read()
        try:
            ex.body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            ex.body = raw.decode(errors="replace")
            return None
        return ex.body

    # --- lifecycle -----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        if self.format is ProviderFormat.ANTHROPIC:
            return build_anthropic_app(self)
        if self.format is ProviderFormat.CODEX:
            return build_codex_app(self)
        return build_openai_app(self)

    @property
    def running(self) -> bool:
        return self._running is not None

    async def start(self, host: str = "127.0.0.1") -> None:
        if self._running is not None:
            raise RuntimeError(f"simulated provider {self.name!r} is already running")
        # handler_cancellation: a client that goes away cancels the handler, which is how the
        # log learns that an upstream request was abandoned.
        runner = web.AppRunner(
            self.build_app(), handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = int(runner.addresses[0][1])
        self.log.stopping = False
        self._running = _Running(runner, host, port, asyncio.Event())

    async def stop(self) -> None:
        """Stop serving; hung and stalled handlers wake up and drop their connections."""
        running = self._running
        if running is None:
            return
        self.log.stopping = True
        running.stop.set()
        try:
            await running.runner.cleanup()
        finally:
            self._running = None
