"""The one line per request, at info: text for people, JSON for log pipelines.

Never prompts, answers or keys: only what the record holds (ids, names, counts, times).
"""

from __future__ import annotations

import logging
import threading

from proxy.logging_setup import ConsoleHandler
from proxy.observe.cost import format_cost
from proxy.observe.record import RequestRecord, attempts_path

log = logging.getLogger("llmproxy.requests")


class RequestLog:
    """Writes the lines through `logging`'s own parts, so every handler, the redaction filters
    and `--log-format json` (which writes the record itself, under `request`) see them as any
    other line; but without its per-call work, which cost more than the line itself:

    - no `Logger.info`: no caller lookup (`findCaller` walks the stack), no `LogRecord` built
      from scratch (each asks for the thread, process and module names); a record is a copy of
      a template made once per thread, with the time and the message filled in;
    - the records of a batch go to the daemon's `ConsoleHandler` together: each filtered and
      formatted by it, written in one call; any other handler (a test's, an embedding
      program's) gets them one by one, as `Logger.callHandlers` would hand them over.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._template: logging.LogRecord | None = None

    def write(self, records: list[RequestRecord]) -> None:
        logger = self._logger
        if logger.disabled or not logger.isEnabledFor(logging.INFO):
            return
        # The logger's own filters (the redaction filter) first, as `Logger.handle` does.
        lines = [line for line in map(self._log_record, records) if logger.filter(line)]
        for handler in _handlers(logger):
            if handler.level > logging.INFO:
                continue
            if isinstance(handler, ConsoleHandler):
                handler.handle_batch(lines)
            else:
                for line in lines:
                    handler.handle(line)

    def _log_record(self, record: RequestRecord) -> logging.LogRecord:
        # Stamped when the request ended, not when its batch was handed over (up to flush_ms
        # later): the line sits in time with the other lines about the same request.
        now = record.started + record.total_ms / 1000
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


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of `logger` reaches (`Logger.callHandlers`' walk)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found


def text_line(r: RequestRecord) -> str:
    """`req_1f.. anthropic stream think: codex 429 -> zai => zai,glm-5 200 in=812 out=96
    cache=0/0 $0.0011 ttft=412ms total=1830ms (reasoning requested)`"""
    # One f-string: a list of parts joined cost twice as much, and this runs for every request.
    path = f" [{attempts_path(r.attempts)}]" if r.attempts else ""
    served = f"=> {r.served}" if r.served else "=> none"
    outcome = ""
    if r.outcome != "ok":
        outcome = f" {r.outcome}:{r.error}" if r.error else f" {r.outcome}"
    ttft = "" if r.ttft_ms is None else f" ttft={r.ttft_ms:.0f}ms"
    reason = f" ({r.reason})" if r.reason else ""
    u = r.usage
    return (
        f"{r.id} {r.client_api} {'stream' if r.stream else 'once'} {r.route or '-'}{path}"
        f" {served} {r.status}{outcome} in={u.input_tokens} out={u.output_tokens}"
        f" cache={u.cache_read_input_tokens}/{u.cache_creation_input_tokens}"
        f" {format_cost(r.cost)}{ttft} total={r.total_ms:.0f}ms{reason}"
    )
