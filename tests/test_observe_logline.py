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

from proxy.frozen import replace
from proxy.logging_setup import (
    _TRIGGERS,
    LOG_FORMAT,
    MAX_MESSAGE_CHARS,
    REDACTED,
    ConsoleHandler,
    JsonFormatter,
    RedactingFilter,
    Redactor,
    TextFormatter,
)
from proxy.observe.cost import format_cost
from proxy.observe.logline import RequestLog, outside_texts, text_line
from proxy.observe.record import DISCONNECTED, ERROR, OK, REFUSED, RequestRecord
from proxy.simulate import SimulatedProvider, run_simulated
from proxy.types import Attempt, ErrorClass, Target, Usage

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


def test_the_text_formatter_writes_what_logging_writes_with_log_format() -> None:
    """`TextFormatter.format` is `LOG_FORMAT` written out by hand: the same text, tracebacks
    and stack included."""
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    records = [
        logging.LogRecord(
            "llmproxy.requests", logging.INFO, __file__, 1, "req_1 %s", ("ok",), None
        ),
        logging.LogRecord("llmproxy", logging.ERROR, __file__, 2, "failed", None, exc_info),
        logging.LogRecord("llmproxy", logging.WARNING, __file__, 3, "w", None, None, sinfo="stack"),
    ]
    for record in records:
        expected = logging.Formatter(LOG_FORMAT).format(logging.makeLogRecord(record.__dict__))
        assert TextFormatter().format(record) == expected
    assert "ValueError: boom" in TextFormatter().format(records[1])


def _timeless(line: str) -> dict[str, object]:
    parsed = orjson.loads(line)
    del parsed["time"]
    return dict(parsed)


def test_a_batch_is_redacted_as_each_line_alone() -> None:
    """`Redactor.redact_all` looks at a batch once, then redacts line by line: a pattern that
    would run on past the end of a line in the joined text (a quoted key's value) stops at it."""
    secret = "a-configured-provider-key-0123"
    redactor = Redactor([secret])
    batches = [
        ["req_1 openai once default", "req_2 openai once default"],
        ['model "api_key": "abc', 'def" more', "third line"],
        [f"model {secret}", "clean line", "token=abcdef tail"],
        ["x Bearer", "abcdefghijk", "sk-", "0123456789"],
        [],
    ]
    for lines in batches:
        assert redactor.redact_all(lines) == [redactor.redact(line) for line in lines]
    assert redactor.redact_all(batches[1])[1] == 'def" more'
    assert Redactor().redact_all(batches[0]) == batches[0]


def _written(
    records: list[RequestRecord], handler_filters: list[logging.Filter], logger_filter: bool
) -> list[str]:
    logger = logging.getLogger("tests.logline.filters")
    logger.propagate, logger.level = False, logging.INFO
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    handler.setFormatter(TextFormatter())
    for handler_filter in handler_filters:
        handler.addFilter(handler_filter)
    own = RedactingFilter(Redactor(["a-configured-provider-key-0123"]))
    logger.addHandler(handler)
    if logger_filter:
        logger.addFilter(own)
    try:
        RequestLog(logger).write(records)
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(own)
    return [line[24:] for line in stream.getvalue().splitlines()]


class _Marker(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"marked {record.getMessage()}"
        return "req_000000000000000000000002" not in record.msg


def test_the_text_path_keeps_every_filter_and_the_length_bound() -> None:
    """Lines go to the daemon's handler without records only where its filters and the
    logger's only redact; any other filter sees records, as `logging` hands them over. A line
    longer than `MAX_MESSAGE_CHARS` (a client chooses the model name) is cut alike."""
    secret = "a-configured-provider-key-0123"
    long_model = "m" * (MAX_MESSAGE_CHARS + 50)
    records = [_record(1, "auto"), _record(2, secret), _record(3, long_model)]
    redacting = RedactingFilter(Redactor([secret]))
    by_logger = _written(records, [], logger_filter=True)
    by_handler = _written(records, [redacting], logger_filter=False)
    assert by_logger == by_handler and len(by_logger) == 3
    assert secret not in "".join(by_logger) and REDACTED in by_logger[1]
    assert re.search(r"m\.\.\. \[\d+ more characters\]$", by_logger[2])
    assert len(by_logger[2]) < MAX_MESSAGE_CHARS + 100
    marked = _written(records, [redacting, _Marker()], logger_filter=True)
    head = "INFO tests.logline.filters: "
    assert marked == [line.replace(head, f"{head}marked ") for line in [by_logger[0], by_logger[2]]]


def test_the_json_line_redacts_each_value_of_the_record() -> None:
    """`--log-format json` redacts the record's strings one by one: a clean record is written as
    it is; a secret, a secret shape or a quoted key with its value in a client-chosen model name
    is masked wherever it sits, attempts included."""
    secret = "a-configured-provider-key-0123"
    redactor = Redactor([secret])
    clean = _record(1, "auto")
    hostile = replace(
        _record(2, f"{secret} sk-clientchosen0123456789 'api_key': 'hunter2hunter2'"),
        attempts=(Attempt(Target("zai", "glm-5"), 500, None, 1.0, detail=f"said {secret}"),),
    )
    out = []
    for record in (clean, hostile):
        line = RequestLog()._log_record(record, 0.0, text_line(record))
        assert RedactingFilter(redactor).filter(line)
        out.append(orjson.loads(JsonFormatter().format(line))["request"])
    assert out[0] == orjson.loads(orjson.dumps(clean.to_json()))
    text = orjson.dumps(out[1]).decode()
    assert secret not in text and "sk-clientchosen" not in text and "hunter2" not in text
    assert out[1]["model"].count(REDACTED) == 3 and REDACTED in out[1]["attempts"][0]["detail"]


def _shapes(route: str, reason: str, provider: str, model: str) -> list[RequestRecord]:
    """Records of every shape a line takes (outcomes, error classes, attempts paths, streams,
    unknown costs), with these outside texts wherever a record holds one."""
    served = Target(provider, model)
    other = Target(provider, model + "2")
    tries = [
        (),
        (Attempt(served, 200, None, 1.0),),
        (Attempt(served, 200, None, 1.0, streaming=True),),
        (Attempt(other, None, ErrorClass.TIMEOUT, 1.0, detail="skipped: cooling down"),),
        (Attempt(other, 500, ErrorClass.SERVER_ERROR, 1.0), Attempt(served, 200, None, 1.0)),
    ]
    errors = ["", DISCONNECTED, *(e.value for e in ErrorClass)]
    records = []
    for outcome in (OK, ERROR, DISCONNECTED, REFUSED):
        for error in errors:
            for attempts in tries:
                for stream in (False, True):
                    records.append(
                        RequestRecord(
                            id=f"req_{len(records):024x}",
                            started=0.0,
                            client_api=("openai", "anthropic", "responses")[len(records) % 3],
                            stream=stream,
                            requested_model=model,
                            route=route if len(records) % 2 else "",
                            reason=reason if len(records) % 5 else "",
                            served=served if attempts else None,
                            attempts=attempts,
                            usage=Usage(123, 45, 6, 7),
                            cost=None if len(records) % 7 == 0 else 0.000123,
                            ttft_ms=12.5 if stream else None,
                            total_ms=20.0,
                            status=499 if outcome == DISCONNECTED else 200,
                            outcome=outcome,
                            error=error,
                        )
                    )
    return records


def test_only_outside_texts_can_hold_a_trigger() -> None:
    """The daemon's request lines are looked at for trigger words only in `outside_texts`
    (the routing reason, model names): the rest of a line is the line's own words, ids and
    numbers, and names from the config, none of which holds a trigger word; a trigger placed
    in the reason or a model name is redacted as a whole-line look would redact it, and a
    known secret anywhere, a config's name included."""
    for record in _shapes("route", "reason", "prov", "model"):
        line = text_line(record).lower()
        assert not [word for word in _TRIGGERS if word in line], line
    secret = "a-configured-provider-key-0123"
    redactor = Redactor([secret])
    hostile = ["Bearer abcdefghijkl", "sk-abcdefghijkl", "token=abcdef", secret, "AIza" + "x" * 24]
    placements = [("route", h, "prov", "model") for h in hostile]
    placements += [("route", "reason", "prov", h) for h in hostile]
    placements += [(secret, "reason", "prov", "model"), ("route", "reason", secret, "model")]
    for placement in placements:
        changed = 0
        for record in _shapes(*placement):  # each alone: a batch is redacted whole or not
            text = text_line(record)
            redacted = redactor.redact_all([text], outside_texts([record]))
            assert redacted == [redactor.redact(text)]
            changed += redacted != [text]
        assert changed
    clean = [text_line(r) for r in _shapes("route", "reason", "prov", "model")]
    assert redactor.redact_all(clean, outside_texts(_shapes("r", "r", "p", "m"))) is clean


def test_a_cost_shows_three_significant_digits_below_a_cent() -> None:
    assert [format_cost(c) for c in (None, 0.0, 0.0123, 1.5, 0.0099, 0.000123, 1.23e-8)] == [
        "-",
        "$0.0000",
        "$0.0123",
        "$1.5000",
        "$0.00990",
        "$0.000123",
        "$0.0000000123",
    ]
    assert format_cost(1e-10) == "$0.000000000100" and format_cost(5e-11) == "$0.000000000050"
