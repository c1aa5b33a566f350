"""The one line per request, at info: text for people, JSON for log pipelines.

Never prompts, answers or keys: only what the record holds (ids, names, counts, times).
"""

from __future__ import annotations

import logging
import threading

from proxy.logging_setup import ConsoleHandler, redaction_only
from proxy.observe.cost import format_cost
from proxy.observe.record import RequestRecord, attempts_path

log = logging.getLogger("llmproxy.requests")


class RequestLog:
    """Writes the lines as `logging` would, so every handler, the redaction filters and
    `--log-format json` (which writes the record itself, under `request`) see them as any other
    line; but without its per-call work, which cost more than the line itself:

    - to the daemon's `ConsoleHandler` writing text, where the logger's and the handler's
      filters only redact (the daemon's usual case), the batch goes as messages with their
      times (`ConsoleHandler.write_messages`): redacted and formatted together, written in one
      call, with no `LogRecord` at all;
    - any other handler (JSON, a test's, an embedding program's) gets records, and only then
      are they made: not by `Logger.info` (no caller lookup, no thread, process and module
      names asked for each), but as copies of a template made once per thread, with the time
      and the message filled in; each filtered by the logger as `Logger.handle` does, then
      handed over one by one, as `Logger.callHandlers` would (a `ConsoleHandler` takes them
      together, `ConsoleHandler.handle_batch`).
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._template: logging.LogRecord | None = None

    def write(self, records: list[RequestRecord]) -> None:
        logger = self._logger
        if logger.disabled or not logger.isEnabledFor(logging.INFO):
            return
        handlers = [h for h in _handlers(logger) if h.level <= logging.INFO]
        if not handlers:
            return
        plain, redactor = redaction_only(logger)
        texts = [text_line(r) for r in records]
        times = [r.started + r.total_ms / 1000 for r in records]
        others = []
        for handler in handlers:
            if plain and isinstance(handler, ConsoleHandler) and handler.writes_text():
                handler.write_messages(
                    logger.name, logging.INFO, times, texts, redactor, outside_texts(records)
                )
            else:
                others.append(handler)
        if not others:
            return
        # The logger's own filters (the redaction filter) first, as `Logger.handle` does.
        lines = [
            line for line in map(self._log_record, records, times, texts) if logger.filter(line)
        ]
        for handler in others:
            if isinstance(handler, ConsoleHandler):
                handler.handle_batch(lines)
            else:
                for line in lines:
                    handler.handle(line)

    def _log_record(self, record: RequestRecord, now: float, text: str) -> logging.LogRecord:
        # Stamped when the request ended, not when its batch was handed over (up to flush_ms
        # later): the line sits in time with the other lines about the same request.
        template = self._template
        if template is None or template.thread != threading.get_ident():
            template = self._template = logging.LogRecord(
                self._logger.name, logging.INFO, __file__, 0, "", None, None, "write"
            )
        out = logging.LogRecord.__new__(logging.LogRecord)
        out.__dict__.update(template.__dict__)
        out.msg = text
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


def outside_texts(records: list[RequestRecord]) -> set[str]:
    """The pieces of the records' `text_line`s that may hold text a client or an upstream
    chose: the routing reason (it quotes the client's model and words) and the model names (a
    client may name any model a provider's glob matches). The rest of a line is this module's
    own words, ids and numbers, or names from the config (providers, routes), none of which
    holds a redaction trigger word, each piece set off by a space or a bracket; a name from
    the config holds a secret only if it is one of the known secrets, which `redact_all`
    looks for in the whole of every line (`Redactor.redact_all`'s `suspects`: tested by
    `test_only_outside_texts_can_hold_a_trigger`)."""
    # Comprehensions, not one loop of `set.add` calls: this runs for every request line.
    found = {r.reason for r in records}
    found.update({r.served.model for r in records if r.served is not None})
    # Most requests were served by their one attempt: its target is the served one.
    found.update(
        {
            attempt.target.model
            for r in records
            if len(r.attempts) != 1 or r.attempts[0].target is not r.served
            for attempt in r.attempts
        }
    )
    return found


def text_line(r: RequestRecord) -> str:
    """`req_1f.. anthropic stream think: codex 429 -> zai => zai,glm-5 200 in=812 out=96
    cache=0/0 $0.0011 ttft=412ms total=1830ms (reasoning requested)`"""
    # One f-string: a list of parts joined cost twice as much, and this runs for every request;
    # for the same reason the usual case (one attempt, and it answered) and the served target
    # are written out rather than asked of `attempts_path` and `Target.__str__`.
    tried = r.attempts
    if not tried:
        path = ""
    elif len(tried) == 1 and tried[0].error_class is None and not tried[0].streaming:
        path = f" [{tried[0].target.provider}]"
    else:
        path = f" [{attempts_path(tried)}]"
    s = r.served
    served = f"=> {s.provider},{s.model}" if s else "=> none"
    outcome = ""
    if r.outcome != "ok":
        outcome = f" {r.outcome}:{r.error}" if r.error else f" {r.outcome}"
    # `round` to an int, not `:.0f`: the same digits (both round half to even), at half the cost.
    ttft = "" if r.ttft_ms is None else f" ttft={round(r.ttft_ms)}ms"
    reason = f" ({r.reason})" if r.reason else ""
    u = r.usage
    return (
        f"{r.id} {r.client_api} {'stream' if r.stream else 'once'} {r.route or '-'}{path}"
        f" {served} {r.status}{outcome} in={u.input_tokens} out={u.output_tokens}"
        f" cache={u.cache_read_input_tokens}/{u.cache_creation_input_tokens}"
        f" {format_cost(r.cost)}{ttft} total={round(r.total_ms)}ms{reason}"
    )
