from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anthropic
import openai
import pytest
from support import CLIENT_KEY, Daemon, start_daemon


@pytest.fixture
async def daemon() -> AsyncIterator[Callable[[str], Awaitable[Daemon]]]:
    """Start the real daemon on 127.0.0.1 from config text; stopped at teardown."""
    started: list[Daemon] = []

    async def make(text: str) -> Daemon:
        started.append(await start_daemon(text))
        return started[-1]

    yield make
    for item in started:
        await item.server.close()


class Clients:
    """Official SDK clients pointed at a daemon; all closed at teardown."""

    def __init__(self) -> None:
        self._open: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []

    def openai(self, daemon: Daemon, api_key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=daemon.openai_base, api_key=api_key, max_retries=0)
        self._open.append(client)
        return client

    def anthropic(self, daemon: Daemon, api_key: str = CLIENT_KEY) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=daemon.url, api_key=api_key, max_retries=0)
        self._open.append(client)
        return client

    async def close(self) -> None:
        for client in self._open:
            await client.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()
