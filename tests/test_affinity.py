"""Prompt-cache affinity: conversation identity, the table, the pure choice, and the daemon
keeping a conversation on its target through a failover (official SDKs, simulated providers)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clients
from support import Daemon, config_text

from proxy.affinity import (
    AFFINITY_HEADER,
    Affinity,
    AffinityEntry,
    AffinitySettings,
    MemoryAffinityTable,
    choose,
)
from proxy.appkeys import AFFINITY
from proxy.config import parse_config
from proxy.conversation import SESSION_HEADER, conversation_of
from proxy.health import HealthRegistry
from proxy.simulate import CutAfter, FaultPlan, SimulatedProvider, Status, run_simulated
from proxy.types import ClientAPI, Decision, ErrorClass, Scenario, SkippedTarget, Target

CAPTURES = Path(__file__).parent / "data" / "captures"
StartDaemon = Callable[[str], Awaitable[Daemon]]
A = Target("kimi", "kimi-k2")
B = Target("minimax", "MiniMax-M2.5")
C = Target("zai", "glm-5")


def capture(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    data = json.loads((CAPTURES / name).read_text())
    return data["body"], data["headers"]


# --- conversation identity ---------------------------------------------------------------------


def test_claude_code_session_from_metadata_user_id_and_header() -> None:
    """Claude Code 2.1 puts its session id in `metadata.user_id` (a JSON string) and in the
    `x-claude-code-session-id` header; count_tokens calls carry only the header."""
    body, headers = capture("claude-code-2.1.332_print-mode_first-request.json")
    conversation = conversation_of(body, {}, ClientAPI.ANTHROPIC)
    assert conversation is not None and conversation.source == "claude-code"
    only_header = conversation_of({"model": body["model"]}, headers, ClientAPI.ANTHROPIC)
    assert only_header == conversation
    # The key is a digest: neither the session id nor any prompt text is in it.
    session = json.loads(body["metadata"]["user_id"])["session_id"]
    assert session not in conversation.key and len(conversation.key) == 32


def test_claude_code_turns_of_one_session_share_a_key_and_models_do_not() -> None:
    body, _ = capture("claude-code-2.1.332_print-mode_first-request.json")
    later = {
        **body,
        "messages": [
            *body["messages"],
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "and now?"},
        ],
    }
    first = conversation_of(body, {}, ClientAPI.ANTHROPIC)
    assert first == conversation_of(later, {}, ClientAPI.ANTHROPIC)
    # Claude Code sends its small-model requests in the same session; they route elsewhere.
    haiku = conversation_of({**body, "model": "claude-haiku-4-5"}, {}, ClientAPI.ANTHROPIC)
    assert haiku is not None and first is not None and haiku.key != first.key


def test_legacy_claude_code_user_id() -> None:
    user_id = "user_abc123_account_0000_session_5a7da8ff-90b0-4aff-b5d6-14caf3b44b06"
    body = {
        "model": "m",
        "metadata": {"user_id": user_id},
        "messages": [{"role": "user", "content": "x"}],
    }
    conversation = conversation_of(body, {}, ClientAPI.ANTHROPIC)
    assert conversation is not None and conversation.source == "claude-code"


def test_codex_prompt_cache_key_and_session_header() -> None:
    body, headers = capture("codex-0.169.0_exec_first-request.json")
    conversation = conversation_of(body, headers, ClientAPI.RESPONSES)
    assert conversation is not None and conversation.source == "prompt_cache_key"
    followup, _ = capture("codex-0.169.0_exec_function-call-output-followup.json")
    assert conversation_of(followup, {}, ClientAPI.RESPONSES) != conversation  # another thread
    without_key = {k: v for k, v in body.items() if k != "prompt_cache_key"}
    from_header = conversation_of(without_key, headers, ClientAPI.RESPONSES)
    assert from_header is not None and from_header.source == "codex-session"


def test_explicit_header_wins_and_separates_identical_prompts() -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "same words"}]}
    one = conversation_of(body, {SESSION_HEADER: "one"}, ClientAPI.OPENAI)
    two = conversation_of(body, {SESSION_HEADER: "two"}, ClientAPI.OPENAI)
    assert one is not None and one.source == SESSION_HEADER
    assert two is not None and one.key != two.key


def test_fallback_hash_of_system_and_first_user_message() -> None:
    turn1 = {
        "model": "auto",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }
    turn2 = {
        "model": "auto",
        "messages": [
            *turn1["messages"],
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "more"},
        ],
    }
    other = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be verbose"},
            {"role": "user", "content": "hi"},
        ],
    }
    first = conversation_of(turn1, {}, ClientAPI.OPENAI)
    assert first is not None and first.source == "prompt"
    second = conversation_of(turn2, {}, ClientAPI.OPENAI)
    assert second is not None and second.key == first.key
    # Unrelated one-shot requests may share an opening: only a continuation looks it up.
    assert not first.continued and second.continued
    assert conversation_of(other, {}, ClientAPI.OPENAI) != first
    assert conversation_of({"model": "auto", "messages": []}, {}, ClientAPI.OPENAI) is None


# --- the table and the pure choice ---------------------------------------------------------------


def test_table_expires_entries_after_ttl_and_slides_on_use() -> None:
    table = MemoryAffinityTable(max_entries=100)
    table.put("k", A, now=0.0, ttl=10.0)
    assert table.get("k", now=9.0) == AffinityEntry(A, 0.0, 10.0)
    table.put("k", A, now=9.0, ttl=10.0)  # a turn that used it
    assert table.get("k", now=18.0) is not None
    assert table.get("k", now=19.5) is None
    assert len(table) == 0


def test_table_is_bounded_least_recently_used_first() -> None:
    table = MemoryAffinityTable(max_entries=2)
    table.put("a", A, 0.0, 100.0)
    table.put("b", B, 1.0, 100.0)
    table.put("a", A, 2.0, 100.0)
    table.put("c", C, 3.0, 100.0)
    assert len(table) == 2
    assert table.get("b", 4.0) is None
    assert table.get("a", 4.0) is not None and table.get("c", 4.0) is not None


def decision(chain: tuple[Target, ...], **extra: Any) -> Decision:
    """A decision on the default route, which names every target of the chain."""
    extra.setdefault("route_targets", (A, B, C))
    return Decision(scenario=Scenario.DEFAULT, reason="routed", chain=chain, **extra)


def healthy(target: Target) -> str | None:
    return None


def test_choose_moves_the_last_target_to_the_head() -> None:
    chosen = choose(decision((A, B, C)), AffinityEntry(B, 0.0, 60.0), 12.0, healthy)
    assert chosen.chain == (B, A, C)
    assert chosen.sticky == B
    assert chosen.affinity == (
        f"kept {B}: it served the last turn 12s ago on route default (its prompt cache is warm)"
    )


def test_choose_new_conversation_keeps_the_routed_chain() -> None:
    chosen = choose(decision((A, B)), None, 0.0, healthy)
    assert chosen.chain == (A, B) and chosen.sticky is None
    assert chosen.affinity is not None and chosen.affinity.startswith("new conversation")


def test_choose_never_overrides_an_explicit_target() -> None:
    chosen = choose(decision((A, B), explicit=True), AffinityEntry(B, 0.0, 60.0), 1.0, healthy)
    assert chosen.chain == (A, B)
    assert chosen.affinity == "the client named a target: affinity not applied"


def test_choose_leaves_a_target_that_no_longer_fits() -> None:
    skipped = (SkippedTarget(B, "text-only model, request has images"),)
    chosen = choose(decision((A, C), skipped=skipped), AffinityEntry(B, 0.0, 60.0), 3.0, healthy)
    assert chosen.chain == (A, C) and chosen.sticky is None
    assert chosen.affinity == (
        f"{B} served the last turn 3s ago but cannot serve this request "
        "(text-only model, request has images): routed as below"
    )


def test_choose_leaves_an_unhealthy_or_absent_target() -> None:
    def cooling(target: Target) -> str | None:
        return "cooling down 30s: rate limited" if target == B else None

    chosen = choose(decision((A, B)), AffinityEntry(B, 0.0, 60.0), 3.0, cooling)
    assert chosen.chain == (A, B)
    assert chosen.affinity is not None and "is unavailable (cooling down 30s" in chosen.affinity
    absent = choose(decision((A, C)), AffinityEntry(B, 0.0, 60.0), 3.0, healthy)
    assert absent.chain == (A, C)
    assert absent.affinity is not None and "is not among route default's targets" in (
        absent.affinity
    )


def test_choose_stays_within_the_targets_the_route_names() -> None:
    """B is on the chain only as the default tail appended behind the think route: a think turn
    goes to think's own target, not to the conversation's previous one."""
    think = Decision(
        scenario=Scenario.THINK, reason="routed", chain=(A, B), route="think", route_targets=(A,)
    )
    chosen = choose(think, AffinityEntry(B, 0.0, 60.0), 3.0, healthy)
    assert chosen.chain == (A, B) and chosen.sticky is None
    assert chosen.affinity == (
        f"{B} served the last turn 3s ago but is not among route think's targets: routed as below"
    )
    other = choose(think, None, 0.0, healthy, elsewhere=AffinityEntry(B, 0.0, 60.0))
    assert other.chain == (A, B) and other.sticky is None
    assert other.affinity is not None and other.affinity.startswith(
        f"route think differs from the conversation's route (its last turn went to {B})"
    )


def test_route_reads_health_without_taking_the_probe_slot() -> None:
    """A half-open target's single probe is the fallback loop's to take, not affinity's."""
    now = [0.0]
    health = HealthRegistry(clock=lambda: now[0])
    for _ in range(3):
        health.record_failure(B, ErrorClass.SERVER_ERROR)
    now[0] = 100.0  # the breaker is half-open now
    affinity = Affinity(MemoryAffinityTable(), clock=lambda: now[0])
    from proxy.conversation import Conversation

    affinity.served(Conversation("k", "test"), B, AffinitySettings(), "default")
    chosen = affinity.route(decision((A, B)), Conversation("k", "test"), AffinitySettings(), health)
    assert chosen.chain == (A, B)
    assert chosen.affinity is not None and "circuit half-open" in chosen.affinity
    assert health.skip_reason(B) is None  # the probe slot is still free


def test_affinity_config_section() -> None:
    text = (
        '[router]\ndefault = "p,m"\n[affinity]\nenabled = false\nttl_ms = 60000\n'
        'max_entries = 50\n[[providers]]\nname = "p"\n'
        'api_base_url = "https://p.example/v1"\nmodels = ["m"]\n'
    )
    assert parse_config(text, {}).affinity == AffinitySettings(False, 60.0, 50)
    defaults = parse_config(text.split("[affinity]")[0] + text.split("max_entries = 50\n")[1], {})
    assert defaults.affinity == AffinitySettings(True, 300.0, 10_000)


# --- through the daemon ------------------------------------------------------------------------

SYSTEM = "You are a careful coding assistant. Answer briefly and precisely. " * 120
CHAIN = {"default": "kimi,kimi-k2|minimax,MiniMax-M2.5"}
PRICES = {
    "kimi": '[providers.capabilities."kimi-k2"]\nprice_in = 0.5\nprice_out = 1.0',
    "minimax": '[providers.capabilities."MiniMax-M2.5"]\nprice_in = 2.0\nprice_out = 4.0',
}


def anthropic_sims() -> list[SimulatedProvider]:
    return [
        SimulatedProvider("kimi", "anthropic", ["kimi-k2"]),
        SimulatedProvider("minimax", "anthropic", ["MiniMax-M2.5"]),
    ]


class Conversation:
    """A Claude Code-shaped conversation: a cached system prompt, the last user turn marked with
    a cache breakpoint, and the session id in `metadata.user_id`."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        session: str,
        model: str = "auto",
        stream: bool = False,
    ) -> None:
        self.client = client
        self.session = session
        self.model = model
        self.stream = stream
        self.history: list[dict[str, Any]] = []

    async def turn(self, text: str) -> tuple[anthropic.types.Message, dict[str, str]]:
        self.history.append(
            {
                "role": "user",
                "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
            }
        )
        user_id = json.dumps({"device_id": "d", "account_uuid": "", "session_id": self.session})
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": 256,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": self.history,
            "metadata": {"user_id": user_id},
        }
        if self.stream:
            async with self.client.messages.stream(**request) as stream:
                message = await stream.get_final_message()
                headers = dict(stream.response.headers)
        else:
            raw = await self.client.messages.with_raw_response.create(**request)
            message, headers = await raw.parse(), dict(raw.headers)
        # The next turn resends this one without its breakpoint, as Claude Code does.
        self.history[-1] = {"role": "user", "content": [{"type": "text", "text": text}]}
        self.history.append({"role": "assistant", "content": message.content[0].text})
        return message, headers


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("mapping", [False, True], ids=["chain", "ranked-alias"])
async def test_conversation_stays_on_the_failover_target_with_a_warm_cache(
    clients: Clients, daemon: StartDaemon, stream: bool, mapping: bool
) -> None:
    """Turns 1-2 on kimi (cold, then warm); kimi fails at turn 3, minimax serves it (cold); kimi
    is back at turn 4, but the conversation stays on minimax, whose cache is warm. With a ranked
    alias the ranking picks the first turn's target only."""
    async with run_simulated(anthropic_sims()) as sims:
        text = config_text(sims, CHAIN)
        if mapping:  # without the ranking, minimax would come first
            text = config_text(
                sims,
                {"default": "minimax,MiniMax-M2.5|kimi,kimi-k2"},
                mappings=[("cheap", "@cheapest")],
                provider_extra=PRICES,
            ).replace('to = "@cheapest"', f'to = "@cheapest"\ncandidates = "{CHAIN["default"]}"')
        proxy = await daemon(text)
        chat = Conversation(
            clients.anthropic(proxy),
            "session-1",
            model="cheap" if mapping else "auto",
            stream=stream,
        )

        first, headers = await chat.turn("Turn one")
        assert headers["x-llmproxy-provider"] == "kimi"
        assert headers[AFFINITY_HEADER].startswith("new conversation")
        assert first.usage.cache_read_input_tokens == 0
        assert (first.usage.cache_creation_input_tokens or 0) > 1024

        second, headers = await chat.turn("Turn two")
        assert headers["x-llmproxy-provider"] == "kimi"
        assert headers[AFFINITY_HEADER].startswith("kept kimi,kimi-k2: it served the last turn")
        assert (second.usage.cache_read_input_tokens or 0) > 1024

        sims["kimi"].plan = FaultPlan.always(Status(500))
        third, headers = await chat.turn("Turn three")
        attempts = headers["x-llmproxy-attempts"]
        # a stream's headers name the try they commit to as still `streaming`
        served = "minimax,MiniMax-M2.5=" + ("streaming" if stream else "ok")
        assert attempts.endswith(served) and "kimi,kimi-k2=500" in attempts
        assert third.usage.cache_read_input_tokens == 0  # a new target starts cold

        sims["kimi"].plan = FaultPlan()  # recovered: a proxy without affinity would go back
        fourth, headers = await chat.turn("Turn four")
        assert headers["x-llmproxy-provider"] == "minimax"
        assert headers["x-llmproxy-attempts"] == served
        assert headers[AFFINITY_HEADER].startswith("kept minimax,MiniMax-M2.5")
        assert (fourth.usage.cache_read_input_tokens or 0) > 1024
        assert fourth.usage.input_tokens < 100  # only the new turn is uncached


async def test_without_affinity_the_conversation_jumps_back(
    clients: Clients, daemon: StartDaemon
) -> None:
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN) + "[affinity]\nenabled = false\n")
        chat = Conversation(clients.anthropic(proxy), "session-1")
        await chat.turn("Turn one")
        sims["kimi"].plan = FaultPlan.always(Status(500))
        _, headers = await chat.turn("Turn two")
        assert headers["x-llmproxy-provider"] == "minimax"
        sims["kimi"].plan = FaultPlan()
        _, headers = await chat.turn("Turn three")
        assert headers["x-llmproxy-provider"] == "kimi"
        assert AFFINITY_HEADER not in headers


ROUTED = """
[[router.keyword_rules]]
name = "deep"
phrases = ["think hard"]
route = "kimi,kimi-k2"
priority = 80
"""


async def test_a_turn_routed_elsewhere_follows_its_route_and_affinity_resumes_after(
    clients: Clients, daemon: StartDaemon
) -> None:
    """Routing decides first: a "think hard" turn (a keyword rule) and a turn with a web search
    tool (the web_search route) go to kimi although zai served the conversation and is on their
    chains as the default behind them; the next plain turn is back on the default route, and
    affinity keeps zai again. A second "think hard" turn finds the rule's own entry."""
    sims_list = [SimulatedProvider("zai", "anthropic", ["glm-5"]), *anthropic_sims()]
    async with run_simulated(sims_list) as sims:
        routes = {"default": "zai,glm-5|kimi,kimi-k2", "web_search": "kimi,kimi-k2"}
        proxy = await daemon(
            config_text(sims, routes).replace("[[providers]]", ROUTED + ("[[providers]]"), 1)
        )
        chat = Conversation(clients.anthropic(proxy), "session-1")
        _, headers = await chat.turn("Hello")
        assert headers["x-llmproxy-provider"] == "zai"

        _, headers = await chat.turn("Please think hard about this")
        assert headers["x-llmproxy-provider"] == "kimi"
        assert headers[AFFINITY_HEADER].startswith(
            "route keyword rule 'deep' differs from the conversation's route (its last turn "
            "went to zai,glm-5)"
        )

        _, headers = await chat.turn("Thanks")
        assert headers["x-llmproxy-provider"] == "zai"
        assert headers[AFFINITY_HEADER].startswith("kept zai,glm-5: it served the last turn")
        assert "on route default" in headers[AFFINITY_HEADER]

        _, headers = await chat.turn("Now think hard again")
        assert headers["x-llmproxy-provider"] == "kimi"
        assert headers[AFFINITY_HEADER].startswith("kept kimi,kimi-k2")
        assert "on route keyword rule 'deep'" in headers[AFFINITY_HEADER]

        search = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
        raw = await clients.anthropic(proxy).messages.with_raw_response.create(
            model="auto",
            max_tokens=64,
            tools=search,  # type: ignore[list-item]
            metadata={"user_id": json.dumps({"session_id": "session-1"})},
            system=[{"type": "text", "text": SYSTEM}],
            messages=[*chat.history, {"role": "user", "content": "search the news"}],
        )
        assert raw.headers["x-llmproxy-provider"] == "kimi"
        assert raw.headers[AFFINITY_HEADER].startswith(
            "route web_search differs from the conversation's route"
        )


async def test_separate_sessions_route_independently(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN))
        client = clients.anthropic(proxy)
        one = Conversation(client, "session-1")
        sims["kimi"].plan = FaultPlan.always(Status(500))
        _, headers = await one.turn("Hello")
        assert headers["x-llmproxy-provider"] == "minimax"
        sims["kimi"].plan = FaultPlan()
        two = Conversation(client, "session-2")
        _, headers = await two.turn("Hello")
        assert headers["x-llmproxy-provider"] == "kimi"  # a new conversation is routed afresh
        _, headers = await one.turn("Again")
        assert headers["x-llmproxy-provider"] == "minimax"


async def test_a_target_that_no_longer_fits_is_left(clients: Clients, daemon: StartDaemon) -> None:
    """The conversation's target is text-only; a turn with an image goes to one that sees."""
    async with run_simulated(anthropic_sims()) as sims:
        extra = {
            "kimi": '[providers.capabilities."kimi-k2"]\nvision = false',
            "minimax": '[providers.capabilities."MiniMax-M2.5"]\nvision = true',
        }
        proxy = await daemon(config_text(sims, CHAIN, provider_extra=extra))
        client = clients.anthropic(proxy)
        chat = Conversation(client, "session-1")
        await chat.turn("Hello")
        png = (
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
            "AAAABJRU5ErkJggg=="
        )
        raw = await client.messages.with_raw_response.create(
            model="auto",
            max_tokens=64,
            metadata={"user_id": json.dumps({"session_id": "session-1"})},
            system=[{"type": "text", "text": SYSTEM}],
            messages=[
                *chat.history,
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": png},
                        },
                        {"type": "text", "text": "what is this?"},
                    ],
                },
            ],
        )
        assert raw.headers["x-llmproxy-provider"] == "minimax"
        assert (
            raw.headers[AFFINITY_HEADER].startswith("kimi,kimi-k2 served the last turn")
            and "cannot serve this request" in (raw.headers[AFFINITY_HEADER])
        )


async def test_an_explicit_target_is_not_overridden(clients: Clients, daemon: StartDaemon) -> None:
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN))
        client = clients.anthropic(proxy)
        await Conversation(client, "s").turn("Hello")
        explicit = Conversation(client, "s", model="minimax,MiniMax-M2.5")
        _, headers = await explicit.turn("Hello")
        assert headers["x-llmproxy-provider"] == "minimax"
        assert headers[AFFINITY_HEADER] == "the client named a target: affinity not applied"


async def test_entries_expire(clients: Clients, daemon: StartDaemon) -> None:
    """An entry lives `ttl_ms` after the turn that last used it: the second turn finds it (and
    renews it), a turn after that expiry finds nothing."""
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN) + "[affinity]\nttl_ms = 3000\n")
        table = proxy.server.app[AFFINITY].table
        chat = Conversation(clients.anthropic(proxy), "session-1")
        await chat.turn("Hello")
        _, headers = await chat.turn("Again")
        assert headers[AFFINITY_HEADER].startswith("kept kimi,kimi-k2")
        user_id = json.dumps({"session_id": "session-1"})
        conversation = conversation_of(
            {"model": "auto", "metadata": {"user_id": user_id}}, {}, ClientAPI.ANTHROPIC
        )
        assert conversation is not None
        key = conversation.key
        entry = table.get(key, time.monotonic())
        assert entry is not None and entry.expires_at - entry.served_at == pytest.approx(3.0)
        await asyncio.sleep(entry.expires_at - time.monotonic() + 0.05)
        assert table.get(key, time.monotonic()) is None
        _, headers = await chat.turn("Once more")
        assert headers[AFFINITY_HEADER].startswith("new conversation")


async def test_a_mid_stream_takeover_moves_the_conversation_to_the_target_that_finished(
    clients: Clients, daemon: StartDaemon
) -> None:
    """kimi's stream is cut after a few chunks and minimax continues the answer (a prefill);
    the conversation then belongs to minimax, which finished that turn."""
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN))
        chat = Conversation(clients.anthropic(proxy), "session-1", stream=True)
        sims["kimi"].plan = FaultPlan([CutAfter(3)])
        await chat.turn("Hello there")
        assert [r.outcome for r in sims["minimax"].requests] == ["ok"]
        _, headers = await chat.turn("Again")
        assert headers["x-llmproxy-provider"] == "minimax"
        assert headers[AFFINITY_HEADER].startswith("kept minimax,MiniMax-M2.5")


async def test_a_stream_that_ends_in_an_error_records_nothing(
    clients: Clients, daemon: StartDaemon
) -> None:
    """Only a completed turn moves a conversation: an answer that ended in an error event (no
    target could continue it) leaves the entry as it was."""
    async with run_simulated(anthropic_sims()) as sims:
        proxy = await daemon(config_text(sims, CHAIN))
        chat = Conversation(clients.anthropic(proxy), "session-1", stream=True)
        await chat.turn("Hello there")  # kimi
        sims["kimi"].plan = FaultPlan([CutAfter(3)])
        sims["minimax"].plan = FaultPlan.always(Status(500))
        with pytest.raises(anthropic.APIError):
            await chat.turn("Again")
        chat.history.pop()  # the failed turn is not part of the conversation
        sims["minimax"].plan = FaultPlan()
        _, headers = await chat.turn("Once more")
        assert headers[AFFINITY_HEADER].startswith("kept kimi,kimi-k2")


async def test_a_conversation_without_an_id_is_known_by_its_opening(
    clients: Clients, daemon: StartDaemon
) -> None:
    """The OpenAI SDK sends no session id: the system prompt and first user message identify
    the conversation. A repeated one-shot request is routed afresh; a continuation is kept."""
    sims_list = [
        SimulatedProvider("zai", "openai", ["glm-5"]),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]
    async with run_simulated(sims_list) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5|cerebras,llama-3.3-70b"}))
        client = clients.openai(proxy)
        opening = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]

        async def ask(messages: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=messages
            )  # type: ignore[arg-type]
            return raw.parse().choices[0].message.content or "", dict(raw.headers)

        sims["zai"].plan = FaultPlan.always(Status(500))
        answer, headers = await ask(opening)
        assert headers["x-llmproxy-provider"] == "cerebras"
        sims["zai"].plan = FaultPlan()
        _, headers = await ask(opening)  # the same one-shot request again: routed afresh
        assert headers["x-llmproxy-provider"] == "zai"
        assert headers[AFFINITY_HEADER].startswith("new conversation")
        _, headers = await ask(
            [
                *opening,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "more"},
            ]
        )
        assert headers["x-llmproxy-provider"] == "zai"  # the latest turn of it went to zai
        assert headers[AFFINITY_HEADER].startswith("kept zai,glm-5")
