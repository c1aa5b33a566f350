"""HTTP that aiohttp cannot parse gets a JSON 400 and a closed connection, from the daemon as
`llmproxy serve` runs it and as the tests run it (both through `proxy.serving.DaemonRunner`);
the daemon keeps serving. Raw bytes over a socket: no client library would send these."""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from cli_support import free_port, subprocess_env
from support import start_daemon

from proxy.serving import DaemonRunner, JsonErrorHandler

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-serving-test"
CONFIG = f"""
[proxy]
api_key = "{KEY}"
[router]
default = "zai,glm-5"
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/v1"
api_key = "unused"
models = ["glm-5"]
"""
POST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nx-api-key: "
    + KEY.encode()
    + b"\r\nContent-Type: application/json\r\n"
)
MALFORMED = {
    "bad request line": (b"GARBAGE\r\n\r\n", "Invalid method encountered"),
    "bad HTTP version": (b"GET /health HTTP/9.x\r\nHost: localhost\r\n\r\n", "Bad status line"),
    "NUL in a header": (
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n",
        "Invalid header value char",
    ),
    "bad chunk size": (
        POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "Invalid character in chunk size",
    ),
    "TLS to the HTTP port": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
        "Received HTTPS traffic on an HTTP port",
    ),
}


@dataclass(frozen=True)
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(port: int, *parts: bytes, pause: float = 0.0) -> Raw:
    """Send `parts` (with `pause` seconds between them) and read until the daemon closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # EOF: the daemon closed it
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (li.split(":", 1) for li in lines)}
    return Raw(int(status_line.split()[1]), headers, body)


def assert_json_400(answer: Raw, reason: str, prefix: str = "malformed HTTP request") -> None:
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.headers["connection"].lower() == "close"
    body = orjson.loads(answer.body)
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "message": f"{prefix}: {reason}",
            "param": None,
            "code": "malformed_request",
        }
    }


async def still_serves(port: int) -> None:
    answer = await exchange(
        port, b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert answer.status == 200 and orjson.loads(answer.body)["status"] == "ok"


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_http_gets_a_json_400_and_the_daemon_keeps_serving(case: str) -> None:
    data, reason = MALFORMED[case]
    daemon = await start_daemon(CONFIG)
    try:
        assert daemon.server.port is not None
        assert_json_400(await exchange(daemon.server.port, data), reason)
        await still_serves(daemon.server.port)
    finally:
        await daemon.server.close()


async def test_a_broken_chunk_after_the_body_began_is_a_400_at_once() -> None:
    """The handler already waits for the body when the bad chunk arrives: it is answered then,
    not after the 30 s body timeout."""
    daemon = await start_daemon(CONFIG)
    try:
        assert daemon.server.port is not None
        started = asyncio.get_running_loop().time()
        answer = await exchange(
            daemon.server.port,
            POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
            b"zz\r\n\r\n",
            pause=0.3,
        )
        assert asyncio.get_running_loop().time() - started < 5
        assert_json_400(answer, "Invalid character in chunk size", "malformed request body")
        await still_serves(daemon.server.port)
    finally:
        await daemon.server.close()


async def test_a_body_that_does_not_decompress_is_a_400() -> None:
    daemon = await start_daemon(CONFIG)
    try:
        assert daemon.server.port is not None
        answer = await exchange(
            daemon.server.port,
            POST + b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789",
        )
        assert_json_400(answer, "Can not decode content-encoding: gzip", "malformed request body")
        await still_serves(daemon.server.port)
    finally:
        await daemon.server.close()


async def test_aiohttp_still_has_the_hooks_proxy_serving_overrides() -> None:
    """When this fails, aiohttp changed how it answers unparsable requests: re-read its
    web_protocol.py, fix proxy/serving.py and the aiohttp range in pyproject.toml."""
    parameters = list(inspect.signature(RequestHandler.handle_error).parameters)
    assert parameters == ["self", "request", "status", "exc", "message"]
    assert {"status", "exc", "message"} <= set(_ErrInfo.__annotations__)
    assert {"_messages", "_current_request"} <= set(RequestHandler.__slots__)
    runner = DaemonRunner(web.Application())
    await runner.setup()
    try:
        assert runner.server is not None
        handler = runner.server()
        assert type(handler) is JsonErrorHandler
    finally:
        await runner.cleanup()


def test_llmproxy_serve_answers_malformed_http_with_json(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace("[proxy]\n", f"[proxy]\nport = {port}\n"))
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--config", str(config)],
        cwd=REPO,
        env=subprocess_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    async def check() -> None:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await still_serves(port)
                break
            except OSError:
                assert process.poll() is None, "the daemon exited"
                assert asyncio.get_running_loop().time() < deadline, "the daemon did not start"
                await asyncio.sleep(0.1)
        for data, reason in MALFORMED.values():
            assert_json_400(await exchange(port, data), reason)
        await still_serves(port)

    try:
        asyncio.run(check())
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err.decode()


def test_a_serving_daemon_collects_garbage_less_often() -> None:
    """Issue 16: once `llmproxy serve` listens, what exists (modules, config, the app) is frozen
    out of the collector's walks and the young generation is collected after 10,000 new
    objects, not 700. Run in a child process: these settings are the whole process's."""
    script = """
import asyncio, gc, os, signal
from aiohttp import web
from proxy.serving import serve_until_signalled

def listening():
    print(gc.get_threshold()[0], gc.get_freeze_count() > 1000, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

asyncio.run(serve_until_signalled(
    web.Application(), "127.0.0.1", 0, on_listening=listening, shutdown_timeout=1
))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=60, check=True
    )
    assert done.stdout.split() == [b"10000", b"True"]
