"""The daemon's memory (README, "Performance"): after a burst of requests it gives the C
library's free memory back once no new request has come for a second, once per burst; and the
journal's SQLite connection keeps a small page cache."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
import orjson
from cli_support import imported_by_serving, serving, subprocess_env
from support import CLIENT_KEY, Daemon, config_text

from proxy.memory import BURST, LIGHT, QUIET, malloc_trim, trim_when_quiet
from proxy.observe.journal import CACHE_KIB, open_journal
from proxy.simulate import SimulatedProvider, run_simulated

REPO = Path(__file__).resolve().parent.parent
DEBUG = ("--log-level", "debug")


class Requests:
    """A server whose `requests_count` the trimmer reads once an interval: during a burst, a
    new request has started before each read."""

    def __init__(self) -> None:
        self.count = 0
        self.busy = 0
        self.over = asyncio.Event()

    def burst(self, requests: int) -> None:
        self.busy = requests
        self.over.clear()

    @property
    def requests_count(self) -> int:
        if self.busy:
            self.busy -= 1
            self.count += 1
            if not self.busy:
                self.over.set()
        return self.count


async def test_the_trim_runs_once_after_each_burst_once_it_is_quiet() -> None:
    server = Requests()
    trims: list[int] = []  # the requests started when each trim ran
    trimmer = asyncio.create_task(
        trim_when_quiet(server, lambda: trims.append(server.count), quiet=0.002)
    )
    try:
        await asyncio.sleep(0.05)
        assert trims == []  # nothing came: nothing to give back
        server.burst(5)
        await server.over.wait()
        await asyncio.sleep(0.05)
        assert trims == [5]  # not during the burst; once, when an interval brought nothing
        server.burst(2)
        await server.over.wait()
        await asyncio.sleep(0.05)
        assert trims == [5, 7]
    finally:
        trimmer.cancel()


class Counter:
    requests_count = 0


async def test_a_probe_every_interval_after_a_burst_does_not_hold_the_trim_back() -> None:
    """A health probe or a metrics scrape a second is a request every interval: the burst's
    pages are still given back, once; and under a steady trickle, once every `BURST` requests,
    not every interval."""
    server = Counter()
    trims: list[int] = []
    quiet = 0.02
    trimmer = asyncio.create_task(
        trim_when_quiet(server, lambda: trims.append(server.requests_count), quiet)
    )
    try:
        await asyncio.sleep(0.5 * quiet)  # the trimmer has read its starting count
        server.requests_count += 1000  # the burst, within one interval
        for _ in range(10):
            await asyncio.sleep(quiet)
            server.requests_count += 1  # the probe
        assert len(trims) == 1 and 1000 <= trims[0] <= 1002
        server.requests_count += BURST - 12  # a trickle, up to a hundred since that trim
        for _ in range(10):
            await asyncio.sleep(quiet)
            server.requests_count += 1
        assert len(trims) == 2
    finally:
        trimmer.cancel()


async def test_more_than_a_few_requests_every_interval_is_a_burst_going_on() -> None:
    server = Counter()
    trims: list[int] = []
    quiet = 0.02
    trimmer = asyncio.create_task(trim_when_quiet(server, lambda: trims.append(1), quiet))
    try:
        for _ in range(20):
            server.requests_count += LIGHT + 1
            await asyncio.sleep(quiet / 4)
        assert trims == []
    finally:
        trimmer.cancel()


def test_glibc_has_the_trim() -> None:
    """This machine's C library is glibc: the daemon trims here (elsewhere nothing runs)."""
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)


def test_a_daemon_gives_memory_back_after_each_burst(tmp_path: Path) -> None:
    """The real daemon: a burst of requests, then quiet; it says at debug level what it gave
    back, once per burst and not while requests keep coming, and once it listens (what its
    start-up left free)."""
    with serving(
        [SimulatedProvider("zai", "openai", ["glm-5"])], {"default": "zai,glm-5"}, daemon=False
    ) as running:
        config = tmp_path / "config.toml"
        config.write_text(running.config)
        log = tmp_path / "daemon.log"
        with (
            log.open("w") as output,
            subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--config", str(config), *DEBUG],
                cwd=REPO,
                env=subprocess_env(tmp_path),
                stdout=output,
                stderr=subprocess.STDOUT,
            ) as daemon,
        ):
            try:
                _wait_listening(log)
                body = {"model": "auto", "messages": [{"role": "user", "content": "x" * 2_000}]}
                with httpx2.Client(
                    base_url=running.url, headers={"authorization": f"Bearer {CLIENT_KEY}"}
                ) as client:
                    for burst in range(2):
                        ends = time.monotonic() + 2.5 * QUIET  # longer than the quiet interval
                        while time.monotonic() < ends:  # requests keep coming: no trim yet
                            reply = client.post("/v1/chat/completions", json=body)
                            assert reply.status_code == 200, reply.text
                            time.sleep(0.1)
                        assert _trims(log) == burst
                        time.sleep(2.5 * QUIET)
                        assert _trims(log) == burst + 1
                    time.sleep(2.5 * QUIET)
                    assert _trims(log) == 2  # quiet after quiet: nothing new to give back
            finally:
                daemon.terminate()
                daemon.wait(30)
    line = re.search(
        r"gave free memory back after a burst: RSS [\d.]+ -> [\d.]+ MB", log.read_text()
    )
    assert line is not None
    assert log.read_text().count("gave free memory back after start-up: RSS") == 1


def _trims(log: Path) -> int:
    return log.read_text().count("gave free memory back after a burst")


def _wait_listening(log: Path) -> None:
    ends = time.monotonic() + 30
    while "listening on" not in log.read_text():
        assert time.monotonic() < ends, log.read_text()
        time.sleep(0.05)


def test_the_journal_keeps_a_small_page_cache(tmp_path: Path) -> None:
    """SQLite's default cache is 2 MB a connection; the journal's is at most 256 KB."""
    assert CACHE_KIB <= 256
    db = open_journal(tmp_path / "requests.db")
    try:
        assert db.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    finally:
        db.close()


USER_ID = "user-7f3a9c1e-only-in-the-request-body"
"""An Anthropic client's `metadata.user_id` reaches an OpenAI-format provider only as a hash,
and the daemon keeps it nowhere: a string holding it is part of a request's body."""


async def test_an_idle_kept_alive_connection_holds_no_request_body(
    daemon: Callable[[str], Awaitable[Daemon]],
) -> None:
    """Between two requests on one kept-alive connection, nothing holds the last one's body:
    not the raw bytes aiohttp cached, not the parsed body, whether it was answered whole, as a
    stream or by the daemon itself (README, "Daemon RSS")."""
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        proxy = await daemon(config_text(sims, {"default": "zai,glm-5"}))
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.port)
        try:
            for path, stream in (
                ("/v1/messages", False),
                ("/v1/messages", True),
                ("/v1/messages/count_tokens", False),
            ):
                status, answer = await _keep_alive_exchange(reader, writer, path, stream)
                assert status == 200, answer
                assert await _no_holder_of(USER_ID) == []
        finally:
            writer.close()


async def _keep_alive_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, stream: bool
) -> tuple[int, bytes]:
    """One request on the connection, its answer read whole; the connection stays open."""
    body = {
        "model": "zai,glm-5",
        "max_tokens": 64,
        "stream": stream,
        "metadata": {"user_id": USER_ID},
        "messages": [{"role": "user", "content": "hello " * 2_000}],
    }
    if path.endswith("count_tokens"):
        del body["stream"], body["max_tokens"]
    data = orjson.dumps(body)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nx-api-key: {CLIENT_KEY}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head.split(" ", 2)[1])
    if "transfer-encoding: chunked" not in head:
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        return status, await reader.readexactly(length)
    answer = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        answer += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")  # the last chunk's empty trailer
    return status, answer


async def _no_holder_of(text: str) -> list[str]:
    """The types of the objects still referring to a string or bytes that contains `text` (other
    than `text` itself), once the daemon has finished the request (its record is made after the
    answer is sent): an empty list, or what still holds it after two seconds."""
    holders: list[str] = []
    for _ in range(40):
        gc.collect()
        holders = []
        for holder in gc.get_objects():
            for held in gc.get_referents(holder):
                if held is not text and _contains(held, text):
                    holders.append(type(holder).__qualname__)
        if not holders:
            break
        await asyncio.sleep(0.05)
    return holders


def _contains(value: object, text: str) -> bool:
    if isinstance(value, str):
        return text in value
    return isinstance(value, bytes | bytearray) and text.encode() in value


CODEX_MODULES = ("proxy.providers.codex", "proxy.codex_auth", "proxy.translate.stream_responses")
PLAIN = f"""
[proxy]
api_key = "{CLIENT_KEY}"
[router]
default = "zai,glm-5"
[[providers]]
name = "zai"
api_base_url = "https://api.z.ai/v1"
api_key = "unused"
models = ["glm-5"]
"""
WITH_CODEX = PLAIN + '[[providers]]\nname = "openai-codex"\nmodels = ["gpt-5.2"]\n'


AIOHTTP_CLIENT = ("aiohttp.client", "aiohttp.connector", "aiohttp.cookiejar", "aiohappyeyeballs")
UNNEEDED = ("difflib", "zipfile", "importlib.resources")
"""The "did you mean" of a wrong config's error; what `importlib.resources` reads a zipped
package with."""


def test_the_codex_transport_is_loaded_only_for_a_config_with_a_codex_provider(
    tmp_path: Path,
) -> None:
    """README, "Daemon RSS": the ChatGPT sign-in and the Responses stream decoder are loaded
    when the config has a codex provider, before the daemon listens, and not otherwise; nor
    does a daemon load aiohttp's client, or modules that only a wrong config or a zipped
    package would use."""
    imported = set(imported_by_serving(tmp_path, PLAIN))
    assert imported.isdisjoint(CODEX_MODULES)
    assert imported.isdisjoint(UNNEEDED)
    assert imported.isdisjoint(AIOHTTP_CLIENT)
    assert set(imported_by_serving(tmp_path, WITH_CODEX)).issuperset(CODEX_MODULES)


def _run_python(script: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_aiohttp_without_its_client_is_whole_once_asked_for_a_name_it_defines() -> None:
    """A serving daemon's `aiohttp` package runs its `__init__` (the client half) only when
    something asks it for a name that file defines; its submodules import alone, asked for
    either way."""
    script = """
import sys
from cli._serve import _aiohttp_without_its_client
_aiohttp_without_its_client()
from aiohttp import hdrs, web
import aiohttp.resolver
assert web.Application and hdrs.CONTENT_TYPE and aiohttp.resolver.DefaultResolver
assert "aiohttp.client" not in sys.modules, "the client half came with the server's modules"
import aiohttp
assert aiohttp.tracing.TraceConfig, "a submodule is an attribute of its package"
assert "aiohttp.client" not in sys.modules, "a submodule asked for ran the package's file"
try:
    aiohttp.py
except AttributeError:
    pass
else:
    raise AssertionError("py.typed is no module")
from aiohttp.http import SERVER_SOFTWARE
assert SERVER_SOFTWARE.endswith("aiohttp/" + aiohttp.__version__), SERVER_SOFTWARE
assert aiohttp.ClientSession.__module__ == "aiohttp.client"
assert aiohttp.DefaultResolver is aiohttp.resolver.DefaultResolver
assert "ClientSession" in aiohttp.__all__
print("whole")
"""
    assert _run_python(script) == "whole"


def test_aiohttp_is_made_whole_once_when_threads_ask_at_once() -> None:
    """Review finding: the first thread to ask runs the package's file; the others wait for it
    and get the name, not an AttributeError."""
    script = """
import threading
from cli._serve import _aiohttp_without_its_client
_aiohttp_without_its_client()
from aiohttp import web
import aiohttp
start = threading.Barrier(8)
got = []
def ask():
    start.wait()
    try:
        got.append(aiohttp.ClientTimeout)
    except Exception as exc:
        got.append(exc)
threads = [threading.Thread(target=ask) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
from aiohttp.client import ClientTimeout
assert got == [ClientTimeout] * 8, got
print("once")
"""
    assert _run_python(script) == "once"


def test_aiohttp_compiled_only_is_imported_as_python_would(tmp_path: Path) -> None:
    """Review finding: an aiohttp installed as compiled files only (a slimmed image) has no
    source to read its version from: the package is left to the import system, and the
    daemon's server still loads."""
    import compileall
    import shutil

    import aiohttp

    copy = tmp_path / "aiohttp"
    shutil.copytree(Path(aiohttp.__file__).parent, copy)
    assert compileall.compile_dir(copy, legacy=True, quiet=2)
    for source in copy.rglob("*.py"):
        source.unlink()
    script = """
import sys
from cli._serve import _aiohttp_without_its_client
_aiohttp_without_its_client()
from aiohttp import web
assert web.Application
assert sys.modules["aiohttp"].__file__.endswith(".pyc"), sys.modules["aiohttp"].__file__
assert "aiohttp.client" in sys.modules, "imported as Python would: the whole package"
print("plain")
"""
    assert _run_python(script, PYTHONPATH=str(tmp_path)) == "plain"
