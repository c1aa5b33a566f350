"""The end-to-end matrix: every route of a config, triggered the way a real client triggers it,
sent through a running daemon over HTTP, and judged on what comes back.

For `default` and `think`: non-streaming and streaming, each plain and with a tool; `background`:
non-streaming plain; each model mapping: non-streaming plain. That is 12 tests for the reference
deployment. Triggers: `default` is an ordinary model name from an OpenAI client; `think` is a
Claude-Code-style Anthropic request with `thinking` enabled; `background` is a haiku-class model
name from an Anthropic client; a mapping is its alias from an OpenAI client.

A plain test passes on a non-empty answer; a tool test only on a well-formed call of the offered
tool (a JSON object carrying its required `city` string) with the stop reason that says so; a
streaming test also needs the stream's proper end (`[DONE]` / `message_stop`). Answers are
judged twice: through the daemon's decoders, and on the wire as strictly as the official SDKs
read it (`proxy.e2e_judge`), so nothing those decoders forgive passes. Every test that names
who answered must have been answered by a target of the chain routing gives it.

The client half (headers, reading the daemon's SSE, the attempts) is `proxy.daemon_client`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from proxy.config import Config
from proxy.daemon_client import (
    ATTEMPTS_HEADER,
    Answer,
    AttemptNote,
    StreamReader,
    answer_from_body,
    answer_from_events,
    attempts_from_error,
    client_headers,
    client_path,
    error_message,
    parse_attempts,
    served_by,
)
from proxy.daemon_client import path_text as path_text  # its home; e2e reports use it
from proxy.e2e_judge import wire_problem
from proxy.errors import RoutingError, UpstreamError
from proxy.frozen import field, frozen
from proxy.routing import decide
from proxy.summary import summarize
from proxy.types import Chain, ClientAPI, JSONObject, Scenario, StopReason, StreamEvent

PLAIN_PROMPT = "In one short sentence: why is the sky blue?"
TOOL_PROMPT = "What is the weather in Paris right now? Use the get_weather tool."
TOOL_NAME = "get_weather"
TOOL_SCHEMA: JSONObject = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
DEFAULT_MODEL = "auto"
CLAUDE_MAIN_MODEL = "claude-sonnet-4-5"
BACKGROUND_MODELS = ("claude-haiku-4-5", "claude-3-5-haiku-latest")


# --- the matrix ---------------------------------------------------------------------------------


@frozen
class Case:
    route: str
    client: ClientAPI
    stream: bool
    tools: bool
    body: JSONObject = field(repr=False)
    chain: Chain
    trigger: str

    @property
    def name(self) -> str:
        return (
            f"{self.route} · {'stream' if self.stream else 'non-stream'} · "
            f"{'tools' if self.tools else 'plain'}"
        )


def build_matrix(config: Config, routes: Sequence[str] = ()) -> list[Case]:
    """The tests for `config`, in a fixed order; `routes` keeps only the named ones (`default`,
    `think`, `background`, a mapping's `from`, or `mappings` for all of them)."""
    router = config.router
    wanted = set(routes)

    def keep(name: str, *, mapping: bool = False) -> bool:
        return not wanted or name in wanted or (mapping and "mappings" in wanted)

    cases: list[Case] = []
    shapes = [(False, False), (False, True), (True, False), (True, True)]
    if keep("default"):
        model = _ordinary_model(config, DEFAULT_MODEL)
        for stream, tools in shapes:
            body = _openai_body(model, PLAIN_PROMPT if not tools else TOOL_PROMPT, stream, tools)
            cases.append(
                _case(config, "default", ClientAPI.OPENAI, stream, tools, body, f"model '{model}'")
            )
    if Scenario.THINK in router.routes and keep("think"):
        model = _ordinary_model(config, CLAUDE_MAIN_MODEL)
        for stream, tools in shapes:
            body = _anthropic_body(
                model, PLAIN_PROMPT if not tools else TOOL_PROMPT, stream, tools, thinking=True
            )
            cases.append(
                _case(
                    config,
                    "think",
                    ClientAPI.ANTHROPIC,
                    stream,
                    tools,
                    body,
                    "Anthropic thinking enabled",
                )
            )
    if Scenario.BACKGROUND in router.routes and keep("background"):
        model = _background_model(config)
        body = _anthropic_body(model, PLAIN_PROMPT, False, False, thinking=False)
        cases.append(
            _case(config, "background", ClientAPI.ANTHROPIC, False, False, body, f"model '{model}'")
        )
    for mapping in router.model_mappings:
        if not keep(mapping.pattern, mapping=True):
            continue
        alias = glob_example(mapping.pattern)
        if not mapping.matches(alias):
            continue
        body = _openai_body(alias, PLAIN_PROMPT, False, False)
        cases.append(
            _case(config, mapping.pattern, ClientAPI.OPENAI, False, False, body, f"alias '{alias}'")
        )
    return cases


def route_names(config: Config) -> list[str]:
    names = ["default"]
    names += [s.value for s in (Scenario.THINK, Scenario.BACKGROUND) if s in config.router.routes]
    return names + [m.pattern for m in config.router.model_mappings]


def _case(
    config: Config,
    route: str,
    client: ClientAPI,
    stream: bool,
    tools: bool,
    body: JSONObject,
    trigger: str,
) -> Case:
    try:
        chain = decide(summarize(body, client), config).chain
    except RoutingError:
        chain = ()
    return Case(route, client, stream, tools, body, chain, trigger)


def _routes_to_default(config: Config, model: str) -> bool:
    router = config.router
    return (
        router.mapping_for(model) is None
        and not router.is_background_model(model)
        and "," not in model
        and config.provider(model.partition(":")[0]) is None
    )


def _ordinary_model(config: Config, preferred: str) -> str:
    """A model name no mapping, background pattern or explicit target claims."""
    for candidate in (preferred, DEFAULT_MODEL, "llmproxy-e2e", "llmproxy-e2e-model"):
        if _routes_to_default(config, candidate):
            return candidate
    return preferred


def _background_model(config: Config) -> str:
    router = config.router
    for candidate in BACKGROUND_MODELS:
        if router.is_background_model(candidate):
            return candidate
    return glob_example(router.background_model_pattern)


def glob_example(pattern: str) -> str:
    """A concrete name a glob matches: `*` and `?` become letters, a set its first member, a
    brace group its first alternative. Plain names come back unchanged."""
    out = re.sub(r"\{([^,}]*)[^}]*\}", r"\1", pattern)
    out = re.sub(r"\[!?\^?(.)[^\]]*\]", r"\1", out)
    return out.replace("*", "x").replace("?", "x")


def _openai_body(model: str, prompt: str, stream: bool, tools: bool) -> JSONObject:
    body: JSONObject = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": TOOL_NAME,
                    "description": "Current weather for a city",
                    "parameters": TOOL_SCHEMA,
                },
            }
        ]
    return body


def _anthropic_body(
    model: str, prompt: str, stream: bool, tools: bool, *, thinking: bool
) -> JSONObject:
    body: JSONObject = {
        "model": model,
        "max_tokens": 4096 if thinking else 1024,
        "messages": [{"role": "user", "content": prompt}],
    }
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    if stream:
        body["stream"] = True
    if tools:
        body["tools"] = [
            {
                "name": TOOL_NAME,
                "description": "Current weather for a city",
                "input_schema": TOOL_SCHEMA,
            }
        ]
    return body


# --- running it ---------------------------------------------------------------------------------


@frozen
class Result:
    case: Case
    passed: bool
    detail: str
    status: int | None
    attempts: tuple[AttemptNote, ...]
    latency_ms: float
    answer: Answer | None = None

    @property
    def served_by(self) -> str | None:
        return served_by(self.attempts)

    @property
    def hops(self) -> int:
        """Attempts before the one that answered (all of them when none did)."""
        return max(0, len(self.attempts) - 1) if self.served_by else len(self.attempts)

    def to_json(self) -> JSONObject:
        return {
            "test": self.case.name,
            "route": self.case.route,
            "client": self.case.client.value,
            "stream": self.case.stream,
            "tools": self.case.tools,
            "trigger": self.case.trigger,
            "passed": self.passed,
            "detail": self.detail,
            "status": self.status,
            "served_by": self.served_by,
            "hops": self.hops,
            "latency_ms": round(self.latency_ms, 1),
            "attempts": [a.to_json() for a in self.attempts],
        }


async def run_case(
    session: aiohttp.ClientSession,
    base_url: str,
    case: Case,
    *,
    api_key: str | None = None,
    time_limit: float = 120.0,
) -> Result:
    started = time.monotonic()
    status: int | None = None
    attempts: tuple[AttemptNote, ...] = ()
    try:
        async with asyncio.timeout(time_limit):
            async with session.post(
                base_url.rstrip("/") + client_path(case.client),
                data=orjson.dumps(case.body),
                headers=client_headers(case.client, api_key),
            ) as response:
                status = response.status
                attempts = parse_attempts(response.headers.get(ATTEMPTS_HEADER, ""))
                if status != 200:
                    raw = await response.read()
                    body = _json_or_none(raw)
                    attempts = attempts_from_error(body) or attempts
                    return _result(
                        case,
                        False,
                        f"HTTP {status}: {error_message(body, raw)}",
                        status,
                        attempts,
                        started,
                    )
                raw = await response.read()
                if case.stream:
                    reader = StreamReader(case.client)
                    events: list[StreamEvent] = reader.feed(raw) + reader.close()
                    attempts = reader.trailer or attempts
                    answer = answer_from_events(events)
                    verdict = judge(case, answer, attempts, ended=reader.ended)
                else:
                    answer = answer_from_body(_json_or_none(raw), case.client)
                    verdict = judge(case, answer, attempts, ended=True)
                # What the daemon's own decoders forgive, a strict client does not.
                verdict = verdict or wire_problem(
                    case.client,
                    raw,
                    stream=case.stream,
                    tools=case.tools,
                    tool_check=tool_call_problem,
                )
    except TimeoutError:
        return _result(
            case, False, f"no complete answer within {time_limit:.0f}s", status, attempts, started
        )
    except UpstreamError as exc:  # an error event inside the stream
        return _result(case, False, f"stream error: {exc.message}", status, attempts, started)
    except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return _result(case, False, f"{type(exc).__name__}: {exc}", status, attempts, started)
    return _result(case, verdict is None, verdict or "ok", status, attempts, started, answer)


def _result(
    case: Case,
    passed: bool,
    detail: str,
    status: int | None,
    attempts: tuple[AttemptNote, ...],
    started: float,
    answer: Answer | None = None,
) -> Result:
    return Result(
        case, passed, detail, status, attempts, (time.monotonic() - started) * 1000, answer
    )


def judge(
    case: Case, answer: Answer, attempts: Sequence[AttemptNote], *, ended: bool
) -> str | None:
    """Why the answer fails the test, or None when it passes."""
    if case.stream and not ended:
        return "the stream ended without its final event"
    who = served_by(attempts)
    if who is not None and case.chain and who not in {str(t) for t in case.chain}:
        return f"served by {who}, which is not on the route's chain"
    if case.tools:
        return judge_tool_call(answer)
    if not answer.text.strip():
        return "empty answer" + (f" (stop: {answer.stop.value})" if answer.stop else "")
    return None


def judge_tool_call(answer: Answer) -> str | None:
    if not answer.tool_calls:
        return "no tool call came back" + (f" (text: {answer.text[:60]!r})" if answer.text else "")
    call = answer.tool_calls[0]
    if not call.id:
        return "the tool call has no id"
    problem = tool_call_problem(call.name, call.arguments)
    if problem is not None:
        return problem
    if answer.stop is not StopReason.TOOL_USE:
        return f"stop reason is {answer.stop.value if answer.stop else 'missing'}, not tool use"
    return None


def tool_call_problem(name: str, arguments: str) -> str | None:
    """Why a call is not a well-formed call of the offered tool, or None."""
    if name != TOOL_NAME:
        return f"called {name!r}, not {TOOL_NAME!r}"
    try:
        parsed = orjson.loads(arguments or "null")
    except orjson.JSONDecodeError:
        return f"tool arguments are not JSON: {arguments[:60]!r}"
    if not isinstance(parsed, dict) or not isinstance(parsed.get("city"), str):
        return f"tool arguments lack the required 'city' string: {arguments[:60]!r}"
    return None


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def run_matrix(
    session: aiohttp.ClientSession,
    base_url: str,
    cases: Sequence[Case],
    *,
    api_key: str | None = None,
    time_limit: float = 120.0,
    on_start: Callable[[Case], Awaitable[None] | None] | None = None,
    on_result: Callable[[Result], Awaitable[None] | None] | None = None,
) -> list[Result]:
    """One case after another: a seeded fault schedule replays only in a fixed order."""
    results = []
    for case in cases:
        if on_start is not None and (pending := on_start(case)) is not None:
            await pending
        result = await run_case(session, base_url, case, api_key=api_key, time_limit=time_limit)
        results.append(result)
        if on_result is not None and (pending := on_result(result)) is not None:
            await pending
    return results


# --- reports ------------------------------------------------------------------------------------


def report_json(results: Sequence[Result], meta: Mapping[str, Any] | None = None) -> JSONObject:
    passed = sum(r.passed for r in results)
    return {
        **(meta or {}),
        "passed": passed,
        "failed": len(results) - passed,
        "results": [r.to_json() for r in results],
    }


def report_markdown(results: Sequence[Result], title: str = "llmproxy e2e") -> str:
    passed = sum(r.passed for r in results)
    lines = [
        f"# {title}: {passed}/{len(results)} passed",
        "",
        "| test | result | served by | hops | path | latency | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [
            r.case.name,
            "PASS" if r.passed else "FAIL",
            r.served_by or "—",
            str(r.hops),
            path_text(r.attempts) or "—",
            f"{r.latency_ms:.0f} ms",
            r.detail.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
