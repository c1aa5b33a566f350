"""The one line per request, at info: text for people, JSON for log pipelines.

Never prompts, answers or keys: only what the record holds (ids, names, counts, times).
"""

from __future__ import annotations

import logging
import threading
import time

from proxy.observe.cost import format_cost
from proxy.observe.record import RequestRecord, attempts_path

log = logging.getLogger("llmproxy.requests")


class RequestLog:
    """Writes the line through `logging`, so every handler, the redaction filter and
    `--log-format json` (which writes the record itself, under `request`) see it as any other
    line; but without `Logger.info`'s per-call work, which cost more than the line itself: no
    caller lookup (`findCaller` walks the stack), no `LogRecord` built from scratch (each one asks
    for the thread, process and module names). A record is a copy of a template made once per
    thread, with the time and the message filled in."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._template: logging.LogRecord | None = None

    def write(self, record: RequestRecord) -> None:
        logger = self._logger
        if logger.isEnabledFor(logging.INFO):
            logger.handle(self._log_record(record))

    def _log_record(self, record: RequestRecord) -> logging.LogRecord:
        now = time.time()
        template = self._template
        if template is None or template.thread != threading.get_ident():
            template = self._template = logging.LogRecord(
                self._logger.name, logging.INFO, __file__, 0, "", None, None, "write"
            )
        out = logging.LogRecord.__new__(logging.LogRecord)
        out.__dict__.update(template.__dict__)
        out.msg = text_line(record)
        out.created = now
        out.msecs = int((now - int(now)) * 1000) + 0.0  # as LogRecord sets them
        out.relativeCreated = template.relativeCreated + (now - template.created) * 1000
        out.request = record  # the JSON formatter writes it whole
        return out


def text_line(r: RequestRecord) -> str:
    """`req_1f.. anthropic stream think: codex 429 -> zai => zai,glm-5 200 in=812 out=96
    cache=0/0 $0.0011 ttft=412ms total=1830ms (reasoning requested)`"""
    parts = [r.id, r.client_api, "stream" if r.stream else "once", r.route or "-"]
    if r.attempts:
        parts.append(f"[{attempts_path(r.attempts)}]")
    parts.append(f"=> {r.served}" if r.served else "=> none")
    parts.append(str(r.status))
    if r.outcome != "ok":
        parts.append(r.outcome + (f":{r.error}" if r.error else ""))
    u = r.usage
    parts.append(
        f"in={u.input_tokens} out={u.output_tokens} "
        f"cache={u.cache_read_input_tokens}/{u.cache_creation_input_tokens}"
    )
    parts.append(format_cost(r.cost))
    if r.ttft_ms is not None:
        parts.append(f"ttft={r.ttft_ms:.0f}ms")
    parts.append(f"total={r.total_ms:.0f}ms")
    if r.reason:
        parts.append(f"({r.reason})")
    return " ".join(parts)
