"""Logging that never carries a key: every record passes a redaction filter.

Known secret values (provider keys and header values, client keys, the management secret,
secrets of `[oauth]`/`[webhooks]`) and secret-shaped text (`sk-...`, `Bearer ...`, JSON fields
named like keys) are masked, in the message and in any traceback. Request and response bodies
are logged only at debug level, redacted, and cut to a few KB.

The filter is attached to the `llmproxy.*` and `aiohttp.*` loggers while an app runs
(`attach_redaction`), and to the console handler by `configure_logging` for the CLI.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

import orjson

from proxy.config import Config

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8
"""Shorter values (`ollama`, `none`) are placeholders, and masking them would mask ordinary
words; secret-shaped text is still caught by the patterns."""
MAX_MESSAGE_CHARS = 16384
BODY_LOG_CHARS = 4096
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRET_NAMES = (
    r"(?:x-)?api[-_]?key|authorization|proxy-authorization|secret[-_]?key|secret"
    r"|client[-_]?secret|password|(?:access|refresh|id)[-_]?token"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"""(?i)(["']({_SECRET_NAMES})["']\s*:\s*["'])[^"']*"""), rf"\1{REDACTED}"),
    (re.compile(rf"(?i)\b((?:{_SECRET_NAMES}|key|token)=)[^&\s\"']+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{6,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
)
_SECRET_KEY = re.compile(r"(?i)secret|key|token|password")
# Every pattern above needs one of these (lower-cased) words: a line without any, most lines,
# skips them. Substring tests are C loops; a case-insensitive regex alternation is ten times
# slower on an ordinary line.
_TRIGGERS = (
    "authorization",
    "secret",
    "password",
    "token",
    "key",
    "bearer",
    "basic",
    "sk-",
    "pk-",
    "rk-",
    "aiza",
    "eyj",
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        known = sorted(self.secrets, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None

    @classmethod
    def from_config(cls, config: Config) -> Redactor:
        return cls(_config_secrets(config))

    def with_config(self, config: Config) -> Redactor:
        """These secrets plus `config`'s: a replaced key may still turn up in a late line."""
        return Redactor(self.secrets | set(_config_secrets(config)))

    def redact(self, text: str) -> str:
        # Plain loops, not any() over a generator: this runs for every line, the request line
        # included, and a generator's frame cost more than the substring tests themselves.
        if self._known is not None:
            for secret in self.secrets:
                if secret in text:
                    text = self._known.sub(REDACTED, text)
                    break
        lowered = text.lower()
        for word in _TRIGGERS:
            if word in lowered:
                break
        else:
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def redact_all(self, texts: list[str], suspects: Iterable[str] | None = None) -> list[str]:
        """`redact` of each text, after one look at them all together: `redact` changes a text
        only when it holds a known secret or a trigger word, and then so do the texts joined.
        Most batches of request lines hold neither, and pass with one scan instead of one per
        line (`texts` itself is returned); a batch that does is redacted line by line, so no
        pattern sees two lines at once.

        `suspects`: where the caller knows that the texts are its own words (none holding a
        trigger word, none running into a neighbour to make one) around these pieces, the only
        ones looked at for trigger words; known secrets are still looked for in every text.
        """
        joined = "\n".join(texts)
        if self._known is not None:
            for secret in self.secrets:
                if secret in joined:
                    return [self.redact(text) for text in texts]
        lowered = (joined if suspects is None else "\n".join(suspects)).lower()
        for word in _TRIGGERS:
            if word in lowered:
                return [self.redact(text) for text in texts]
        return texts


def _config_secrets(config: Config) -> list[str]:
    secrets: list[str] = [*config.proxy.api_keys, config.management.secret_key]
    secrets.append(urlsplit(config.state.url).password or "")
    for provider in config.providers:
        secrets.append(provider.api_key)
        secrets.extend(provider.headers.values())
    for section in config.extra.values():
        secrets.extend(_secret_values(section))
    return secrets


def _secret_values(table: Mapping[str, Any], secret: bool = False) -> Iterable[str]:
    for key, value in table.items():
        named = secret or bool(_SECRET_KEY.search(key))
        if isinstance(value, Mapping):
            yield from _secret_values(value, named)
        elif isinstance(value, str) and named:
            yield value


REDACTED_MARK = "llmproxy_redacted"


class RedactingFilter(logging.Filter):
    """Rewrites each record in place: message formatted, redacted, bounded; traceback too."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor  # replaced whole, never mutated: a read sees one or the other

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, REDACTED_MARK, False) and not record.exc_info:
            return True  # a logger's filter already did it; the handler's need not again
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format call: logging reports it itself
            return True
        setattr(record, REDACTED_MARK, self.redactor)  # what the JSON formatter redacts with
        record.msg, record.args = bounded(self.redactor.redact(message)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


def bounded(message: str) -> str:
    """`message`, cut to `MAX_MESSAGE_CHARS` (a client chooses the model name a line holds)."""
    if len(message) > MAX_MESSAGE_CHARS:
        cut = len(message) - MAX_MESSAGE_CHARS
        return f"{message[:MAX_MESSAGE_CHARS]}... [{cut} more characters]"
    return message


def redaction_only(filterer: logging.Filterer) -> tuple[bool, Redactor | None]:
    """Whether every filter of `filterer` is a `RedactingFilter` (so a line can be written
    without a `LogRecord` for filters to see), and the redactor of the first one: the one that
    redacts, as the later ones see its mark and leave the line alone."""
    redactor = None
    for log_filter in filterer.filters:
        if type(log_filter) is not RedactingFilter:
            return False, None
        if redactor is None:
            redactor = log_filter.redactor
    return True, redactor


def _our_loggers() -> list[logging.Logger]:
    names = {
        "llmproxy",
        "aiohttp",
        "aiohttp.server",
        "aiohttp.web",
        "aiohttp.access",
        "aiohttp.client",
        "aiohttp.internal",
    }
    names.update(
        n for n in logging.root.manager.loggerDict if n.startswith(("llmproxy.", "aiohttp."))
    )
    return [logging.getLogger(n) for n in sorted(names)]


def attach_redaction(log_filter: RedactingFilter) -> Callable[[], None]:
    """Put `log_filter` on every llmproxy and aiohttp logger (a logger's filters see only its
    own records, hence each one); returns the function that takes it off again. Assigning
    `log_filter.redactor` later changes what it masks (a config replaced at runtime)."""
    loggers = _our_loggers()
    for logger in loggers:
        logger.addFilter(log_filter)

    def detach() -> None:
        for logger in loggers:
            logger.removeFilter(log_filter)

    return detach


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message; a request line adds its record
    (`request`, see `proxy.observe.logline`), made JSON only here, where it is written."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "to_json"):
            out["request"] = request.to_json()
            redactor = getattr(record, REDACTED_MARK, None)
            if isinstance(redactor, Redactor):  # the client names the model: it is redacted too
                out["request"] = _redacted(out["request"], redactor)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return orjson.dumps(out).decode()


def _redacted(request: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The record's strings redacted one by one, not its JSON text: that text always holds a
    trigger word (`cache_read_tokens`), so every pattern ran over it, for every line, at twenty
    times the cost of the rest of the line; and a value's own quotes, escaped in it, hid a
    quoted `"api_key": "..."` from the patterns."""
    texts: list[str] = []
    _strings(request, texts)
    if redactor.redact_all(texts) is texts:  # nothing in any of them
        return request
    return cast(dict[str, Any], _redact_strings(request, redactor))


def _strings(value: object, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, into)
    elif isinstance(value, list):
        for item in value:
            _strings(item, into)


def _redact_strings(value: object, redactor: Redactor) -> object:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, dict):
        return {key: _redact_strings(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_strings(item, redactor) for item in value]
    return value


class TextFormatter(logging.Formatter):
    """`LOG_FORMAT`, with the time's text made once a second rather than once a line (a
    daemon at a few thousand requests a second writes a few thousand lines)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._stamp = (-1, "")  # one tuple, replaced whole: a thread never sees half of it
        self._millis: tuple[str, ...] = ()

    def millis(self) -> tuple[str, ...]:
        """`,000` to `,999`, the time's text after the second: looked up, not formatted, for
        each of a batch's lines (`:03d` is a format spec parsed per call, a sixth of a line's
        cost). Made at the first batch, not for every CLI command that formats a line."""
        if not self._millis:
            self._millis = tuple(f",{ms:03d}" for ms in range(1000))
        return self._millis

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self.second_stamp(record.created)},{int(record.msecs):03d}"  # as logging's

    def second_stamp(self, created: float) -> str:
        """The time's text to the second; a record made at `created` has its milliseconds
        `int((created - int(created)) * 1000)` (as `LogRecord` sets `msecs`)."""
        second = int(created)
        cached, stamp = self._stamp
        if second != cached:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(created))
            self._stamp = (second, stamp)
        return stamp

    def format(self, record: logging.LogRecord) -> str:
        """`LOG_FORMAT` as one f-string: `Formatter.format` searches the format for `asctime`
        and applies it with `%` to the record's whole `__dict__`, for every line."""
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = message = record.getMessage()
        record.asctime = stamp = self.formatTime(record)
        return f"{stamp} {record.levelname} {record.name}: {message}"


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """The daemon's handler (stderr, or the log file of a detached daemon). Besides one record
    at a time, it takes a batch of request lines, written together in one call: as records
    (`handle_batch`), each filtered and formatted as `handle` would; or, when it writes text and
    its filters only redact (`writes_text`), as messages (`write_messages`), with no
    `LogRecord` made for each."""

    def writes_text(self) -> bool:
        return type(self.formatter) is TextFormatter and redaction_only(self)[0]

    def write_messages(
        self,
        name: str,
        level: int,
        times: list[float],
        texts: list[str],
        redactor: Redactor | None,
        suspects: Iterable[str] | None = None,
    ) -> None:
        """Lines of logger `name` at `level`, made at `times` with messages `texts`, as `handle`
        writes records of them through its `TextFormatter` and redacting filters (needs
        `writes_text`). `redactor`: the logger's own filter's, which redacts before the
        handler's; `suspects`: as `Redactor.redact_all` takes them."""
        formatter = cast(TextFormatter, self.formatter)
        if redactor is None:
            redactor = redaction_only(self)[1]
        if redactor is not None:
            texts = redactor.redact_all(texts, suspects)
            if max(map(len, texts), default=0) > MAX_MESSAGE_CHARS:
                texts = [bounded(text) for text in texts]
        head = f" {logging.getLevelName(level)} {name}: "
        end = self.terminator
        millis = formatter.millis()
        lines = []
        second, prefix = -1, ""
        for created, text in zip(times, texts, strict=True):
            whole = int(created)
            if whole != second:  # `formatter.stamp`, its per-second part taken once a second
                second, prefix = whole, formatter.second_stamp(created)
            lines.append(f"{prefix}{millis[int((created - whole) * 1000)]}{head}{text}{end}")
        self.acquire()
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:  # as `emit` does: logging reports it, the daemon goes on
            self.handleError(logging.makeLogRecord({"name": name, "levelno": level}))
        finally:
            self.release()

    def handle_batch(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            if self.filter(record):
                try:
                    lines.append(self.format(record) + self.terminator)
                except Exception:  # as `emit` does: logging reports it, the daemon goes on
                    self.handleError(record)
        if not lines:
            return
        self.acquire()
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:
            self.handleError(records[-1])
        finally:
            self.release()


LOG_FORMATS = ("text", "json")


def configure_logging(level: str, redactor: Redactor, log_format: str = "text") -> None:
    """Console logging for the daemon: `llmproxy` at `level`, every line redacted; `json` makes
    each line one JSON object."""
    handler = ConsoleHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("llmproxy").setLevel(level.upper())
    # The CLI's own calls to the daemon (the port check's `/health`) are not the daemon's news:
    # httpx2 logs every request at INFO.
    logging.getLogger("httpx2").setLevel(max(logging.WARNING, root.level))


def log_body(logger: logging.Logger, label: str, raw: bytes, redactor: Redactor) -> None:
    """A body at debug level only: redacted in full first (a cut must not split a secret),
    then shortened."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    text = redactor.redact(raw.decode("utf-8", "replace"))
    extra = len(text) - BODY_LOG_CHARS
    more = f"... [{extra} more characters]" if extra > 0 else ""
    logger.debug("%s: %s%s", label, text[:BODY_LOG_CHARS], more)
