"""The live status page in a real headless browser (Debian's chromium): it shows a request
made while it is open, renders a hostile model name as text, and loads nothing from outside."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from cdp import CHROMIUM, chromium_page
from support import CLIENT_KEY, config_text

from proxy.config import parse_config
from proxy.observe.web import UI_CSP
from proxy.server import build_app
from proxy.simulate import FaultPlan, SimulatedProvider, Status, run_simulated

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)"
)
HOSTILE = "<img src=x onerror=alert(1)>"
SCREENSHOT = Path(__file__).parent / "data" / "ui-screenshot.png"
"""The README's picture of the page: this test's screenshot, kept when
LLMPROXY_UPDATE_SCREENSHOT=1 is set."""


@pytest.fixture
async def daemon_url() -> AsyncIterator[str]:
    sims = [
        SimulatedProvider(
            "zai", "openai", ["glm-5"], chunk_delay=0.01, plan=FaultPlan([Status(500), Status(500)])
        ),
        SimulatedProvider("cerebras", "openai", ["llama-3.3-70b"]),
    ]
    async with run_simulated(sims) as running:
        text = config_text(running, {"default": "zai,glm-5|cerebras,llama-3.3-70b"})
        app = build_app(parse_config(text, env={}), env={})
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()


async def test_the_status_page_updates_live_and_escapes_everything(
    daemon_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http, http.get(daemon_url + "/ui") as response:
        assert response.headers["content-security-policy"] == UI_CSP
        assert "http" not in (await response.text()).replace('charset="utf-8"', "")
    async with chromium_page(tmp_path / "profile") as page:
        await page.call("Page.navigate", url=f"{daemon_url}/ui#key={CLIENT_KEY}")
        await page.wait_for("document.getElementById('state')?.textContent.startsWith('live')")
        assert await page.evaluate("document.querySelectorAll('#requests tbody tr').length") == 0
        async with openai.AsyncOpenAI(
            base_url=daemon_url + "/v1", api_key=CLIENT_KEY, max_retries=0
        ) as client:
            await client.chat.completions.create(  # zai fails twice: cerebras serves
                model="auto", messages=[{"role": "user", "content": "hello"}]
            )
            stream = await client.chat.completions.create(
                model=HOSTILE, messages=[{"role": "user", "content": "hello"}], stream=True
            )
            [chunk async for chunk in stream]
        await page.wait_for("document.querySelectorAll('#requests tbody tr').length === 2")
        cells = await page.evaluate(
            "[...document.querySelectorAll('#requests tbody tr')].map("
            "r => [...r.cells].map(c => c.textContent))"
        )
        newest, first = cells
        assert newest[2] == HOSTILE  # shown as text...
        assert await page.evaluate("document.querySelectorAll('img').length") == 0  # ...not run
        assert first[4] == "zai 500 -> zai 500 -> cerebras"
        assert first[5] == "cerebras,llama-3.3-70b"
        assert newest[5] == "zai,glm-5" and newest[8].startswith("$")
        targets = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#targets tbody tr')].map("
            "r => [r.cells[0].textContent, r.cells[1].textContent]))"
        )
        assert targets == {"zai,glm-5": "healthy", "cerebras,llama-3.3-70b": "healthy"}
        dialogs = [e for e in page.events if e.get("method") == "Page.javascriptDialogOpening"]
        assert dialogs == []
        picture = await page.screenshot()
    assert picture.startswith(b"\x89PNG")
    (tmp_path / "ui.png").write_bytes(picture)
    if os.environ.get("LLMPROXY_UPDATE_SCREENSHOT"):  # how the README's picture is made
        SCREENSHOT.write_bytes(picture)
    assert SCREENSHOT.is_file()
