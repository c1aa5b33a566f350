"""Raw HTTP to the daemon, for tests that must see the exact bytes a client receives.

The SSE reader here is deliberately naive and independent of `proxy.sse`: the daemon writes every
event as optional `event:` plus one `data:` line, and that is what these tests pin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from support import CLIENT_KEY


@dataclass(frozen=True)
class RawResponse:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[tuple[str, Any]]:
        """(event name or "", data) per SSE event; data is JSON, or the text `[DONE]`."""
        found: list[tuple[str, Any]] = []
        for frame in self.body.decode().replace("\r\n", "\n").split("\n\n"):
            fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            if "data" in fields:
                data = fields["data"]
                value = data if data == "[DONE]" else orjson.loads(data)
                found.append((fields.get("event", ""), value))
        return found


async def post(
    url: str,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    key: str | None = CLIENT_KEY,
) -> RawResponse:
    """POST JSON (or raw bytes) with the client key as `x-api-key` unless headers say otherwise."""
    sent = {"content-type": "application/json"}
    if key is not None:
        sent["x-api-key"] = key
    sent.update(headers or {})
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=sent) as response,
    ):
        return RawResponse(
            response.status, response.content_type, await response.read(), dict(response.headers)
        )


async def get(url: str, *, key: str = CLIENT_KEY) -> RawResponse:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"authorization": f"Bearer {key}"}) as response,
    ):
        return RawResponse(
            response.status, response.content_type, await response.read(), dict(response.headers)
        )
