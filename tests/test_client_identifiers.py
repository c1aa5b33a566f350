"""Client identifiers never reach a third party: Claude Code's `metadata.user_id` (device and
session ids) reaches an OpenAI-format provider only as a stable hash (issue 11, item 8)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from conftest import Clients
from support import Daemon, config_text

from proxy.simulate import SimulatedProvider, run_simulated

StartDaemon = Callable[[str], Awaitable[Daemon]]
# The shape Claude Code 2.1.x sends (a JSON string in `metadata.user_id`).
CLAUDE_CODE_USER_ID = orjson.dumps(
    {
        "device_id": "4f1c2a9be0d84c7f9e3b6a1d2c5e8f70aa11bb22cc33dd44ee55ff6677889900",
        "account_uuid": "",
        "session_id": "0b7e4a52-3c1d-4e8f-9a6b-2d5c7e9f1a3b",
    }
).decode()


async def test_claude_codes_user_id_reaches_an_openai_provider_only_as_a_stable_hash(
    clients: Clients, daemon: StartDaemon
) -> None:
    sim = SimulatedProvider("zai", "openai", ["glm-5"])
    async with run_simulated([sim]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        client = clients.anthropic(proxy)
        for user_id in (CLAUDE_CODE_USER_ID, CLAUDE_CODE_USER_ID, "someone-else"):
            await client.messages.create(
                model="auto",
                max_tokens=64,
                messages=[{"role": "user", "content": "hi"}],
                metadata={"user_id": user_id},
            )
        first, second, other = (record.body["user"] for record in sims["zai"].requests)
        raw = b"".join(orjson.dumps(record.body) for record in sims["zai"].requests)
    assert first == second != other  # stable per user, different between users
    assert b"device_id" not in raw and b"4f1c2a9be0d84c7f" not in raw and b"0b7e4a52" not in raw
    assert first.startswith("llmproxy-") and len(first) == len("llmproxy-") + 32


async def test_a_provider_trusted_with_forward_user_id_gets_the_id_unchanged(
    clients: Clients, daemon: StartDaemon
) -> None:
    trusted = SimulatedProvider("vllm", "openai", ["glm-5"])
    async with run_simulated([trusted]) as sims:
        proxy = await daemon(
            config_text(
                sims, {"default": "vllm,glm-5"}, provider_extra={"vllm": "forward_user_id = true"}
            )
        )
        await clients.anthropic(proxy).messages.create(
            model="auto",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"user_id": CLAUDE_CODE_USER_ID},
        )
        (record,) = sims["vllm"].requests
    assert record.body["user"] == CLAUDE_CODE_USER_ID
