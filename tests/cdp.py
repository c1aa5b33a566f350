"""Headless Chromium driven over the DevTools protocol (a websocket, JSON messages): enough to
load a page, evaluate script in it and take a screenshot. No browser download: Debian's
`chromium` package, which `.ci/run` installs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=1400,900",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), 60)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20.0) -> Any:
        """Poll `expression` until it is truthy (the page updates itself)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"never true: {expression}")
            await asyncio.sleep(0.1)

    async def screenshot(self) -> bytes:
        """The page as PNG."""
        data = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(data["data"])


@contextlib.asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium (its own profile dir) with one blank page."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    drain: asyncio.Task[None] | None = None
    try:
        assert process.stderr is not None
        browser_url = await asyncio.wait_for(_devtools_url(process.stderr), 60)
        drain = asyncio.create_task(_drain(process.stderr))  # a full pipe would stall chromium
        port = re.search(r":(\d+)/", browser_url).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(browser_url, max_msg_size=0) as browser_ws:
                target = await Page(browser_ws).call("Target.createTarget", url="about:blank")
            page_url = f"ws://127.0.0.1:{port}/devtools/page/{target['targetId']}"
            async with http.ws_connect(page_url, max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                yield page
    finally:
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    while line := await stderr.readline():
        if match := _LISTENING.search(line):
            return match.group(1).decode()
    raise RuntimeError("chromium exited without opening its DevTools port")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
