"""The request line as a user sees it: `llmproxy serve` in its own process, its stderr read (the
other tests read the records `logging` hands to pytest, not what the daemon's handler writes)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import openai
import orjson
from redis_support import free_port
from support import CLIENT_KEY, config_text

from proxy.logging_setup import (
    REDACTED,
    ConsoleHandler,
    JsonFormatter,
    RedactingFilter,
    Redactor,
    TextFormatter,
)
from proxy.observe.logline import RequestLog
from proxy.observe.record import RequestRecord
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import Attempt, Target, Usage

PROMPT = "Say something about the log line"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO llmproxy\.requests: (?P<id>req_[0-9a-f]{24}) "
    r"openai once default \[zai\] => zai,glm-5 200 in=\d+ out=\d+ cache=0/0 \$[0-9.]+ "
    r"total=\d+ms \(.+\)$"
)


async def serve_one_request(tmp_path: Path, *flags: str) -> tuple[str, list[str]]:
    """Start the daemon with `flags`, make one request, stop it: the request id and the
    daemon's stderr lines."""
    async with run_simulated([SimulatedProvider("zai", "openai", ["glm-5"])]) as sims:
        config = tmp_path / "config.toml"
        config.write_text(config_text(sims, {"default": "zai,glm-5"}))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            *flags,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LLMPROXY_STATE_DIR": str(tmp_path / "state")},
        )
        try:
            await _answering(url)
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0)
            async with client:
                raw = await client.chat.completions.with_raw_response.create(
                    model="auto", messages=[{"role": "user", "content": PROMPT}]
                )
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
    return raw.headers["x-request-id"], err.decode().splitlines()


async def _answering(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url + "/health/live") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered on {url}")


async def test_the_daemon_writes_one_text_line_per_request_to_stderr(tmp_path: Path) -> None:
    request_id, lines = await serve_one_request(tmp_path)
    written = [line for line in lines if "llmproxy.requests" in line]
    assert len(written) == 1, lines
    match = TEXT_LINE.match(written[0])
    assert match is not None, written[0]
    assert match["id"] == request_id
    assert not any(PROMPT in line or CLIENT_KEY in line for line in lines)


async def test_workers_write_json_lines_with_the_record(tmp_path: Path) -> None:
    request_id, lines = await serve_one_request(tmp_path, "--log-format", "json", "--workers", "2")
    records = [orjson.loads(line) for line in lines if line.startswith("{")]
    (line,) = [r for r in records if r["logger"] == "llmproxy.requests"]
    assert line["level"] == "info" and line["message"].startswith(request_id)
    request = line["request"]
    assert request["id"] == request_id and request["served"] == "zai,glm-5"
    assert request["path"] == "zai" and request["status"] == 200 and request["outcome"] == "ok"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", line["time"])
    assert not any(PROMPT in line or CLIENT_KEY in line for line in lines)


def _record(n: int, model: str) -> RequestRecord:
    served = Target("zai", "glm-5")
    return RequestRecord(
        id=f"req_{n:024x}",
        started=0.0,
        client_api="openai",
        stream=False,
        requested_model=model,
        route="default",
        reason=f"model {model} -> default chain",
        served=served,
        attempts=(Attempt(served, 200, None, 12.5),),
        usage=Usage(10, 5),
        cost=0.0001,
        ttft_ms=None,
        total_ms=20.0,
        status=200,
        outcome="ok",
    )


def test_the_batch_path_writes_what_logging_writes_one_by_one() -> None:
    """The daemon's handler takes a turn's lines together (`ConsoleHandler.handle_batch`); any
    other handler gets them one by one. Both write the same lines, redacted alike."""
    secret = "a-configured-provider-key-0123"
    records = [_record(1, "auto"), _record(2, "sk-clientchosen0123456789"), _record(3, secret)]
    redactor = Redactor([secret])
    for formatter in (TextFormatter, JsonFormatter):
        written = []
        for handler_class in (ConsoleHandler, logging.StreamHandler):
            logger = logging.getLogger(f"tests.logline.{formatter.__name__}")
            logger.propagate, logger.level = False, logging.INFO
            stream = io.StringIO()
            handler = handler_class(stream)
            handler.setFormatter(formatter())
            handler.addFilter(RedactingFilter(redactor))
            logger_filter = RedactingFilter(redactor)
            logger.addHandler(handler)
            logger.addFilter(logger_filter)
            try:
                RequestLog(logger).write(records)
            finally:
                logger.removeHandler(handler)
                logger.removeFilter(logger_filter)
            written.append(stream.getvalue().splitlines())
        batch, one_by_one = written
        assert len(batch) == len(records)
        if formatter is JsonFormatter:
            batch, one_by_one = ([_timeless(line) for line in lines] for lines in written)
        else:
            batch, one_by_one = ([line[24:] for line in lines] for lines in written)  # no time
        assert batch == one_by_one
        text = "\n".join(written[0])  # the batch path, as written
        assert "sk-clientchosen" not in text and secret not in text and REDACTED in text


def _timeless(line: str) -> dict[str, object]:
    parsed = orjson.loads(line)
    del parsed["time"]
    return dict(parsed)
