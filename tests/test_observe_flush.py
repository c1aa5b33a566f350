"""The observer's batches (every `[journal] flush_ms`): a request line keeps the time its request
ended, and a stopping daemon hands over what ended before it drains the requests still running."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import openai
from support import CLIENT_KEY, config_text
from test_observe_journal import _record

from proxy.config import parse_config
from proxy.observe.journal import Query, read_requests
from proxy.observe.observer import Observer
from proxy.server import build_app
from proxy.serving import listening
from proxy.simulate import SimulatedProvider, run_simulated


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)


async def test_a_request_line_is_stamped_when_its_request_ended_not_when_its_batch_left() -> None:
    observer = Observer(None, None, None, flush_seconds=0.5)
    logger = observer.log._logger
    keep, level = _Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        started = time.time() - 0.02
        observer.finish(_record(started, 1))  # 20 ms long: it ended now
        await asyncio.sleep(0.7)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    (line,) = keep.seen
    assert abs(line.created - (started + 0.02)) < 0.005


async def test_requests_that_ended_are_journaled_before_the_running_ones_drain(
    tmp_path: Path,
) -> None:
    """With a long `flush_ms`, three requests end, a fourth is still waiting for its upstream
    when the daemon stops: the three are in the journal while the fourth drains, so a kill at
    the end of the grace period (`llmproxy stop`) would lose none of them."""
    journal = tmp_path / "requests.db"
    sim = SimulatedProvider("zai", "openai", ["glm-5"])
    async with run_simulated([sim]) as sims:
        text = (
            config_text(sims, {"default": "zai,glm-5"})
            + f'[journal]\npath = "{journal}"\nflush_ms = 60000\n'
        )
        app = build_app(parse_config(text, env={}), env={})
        rows_while_draining = -1
        async with listening(app, "127.0.0.1", 0, shutdown_timeout=10) as runner:
            host, port = runner.addresses[0][:2]
            client = openai.AsyncOpenAI(
                base_url=f"http://{host}:{port}/v1", api_key=CLIENT_KEY, max_retries=0
            )
            for _ in range(3):
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "hi"}]
                )
            sim.first_token_delay = 3.0
            slow = asyncio.create_task(
                client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "hi"}]
                )
            )
            await asyncio.sleep(0.3)

            async def look() -> None:
                nonlocal rows_while_draining
                await asyncio.sleep(1.5)  # the slow request is being drained now
                found = read_requests(journal, Query(limit=50)) if journal.exists() else []
                rows_while_draining = len(found)

            looker = asyncio.create_task(look())
        await looker
        await asyncio.gather(slow, return_exceptions=True)
        await client.close()
    assert rows_while_draining == 3
    assert len(read_requests(journal, Query(limit=50))) == 4
