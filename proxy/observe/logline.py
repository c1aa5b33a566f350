"""The one line per request, at info: text for people, JSON for log pipelines.

Never prompts, answers or keys: only what the record holds (ids, names, counts, times).
"""

from __future__ import annotations

import logging

from proxy.observe.cost import format_cost
from proxy.observe.record import RequestRecord, attempts_path

log = logging.getLogger("llmproxy.requests")


def log_request(record: RequestRecord) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    # The JSON formatter (`--log-format json`) writes the record itself under `request`.
    log.info("%s", LazyLine(record), extra={"request": record})


class LazyLine:
    """Formats the text line only if a handler writes it."""

    __slots__ = ("record",)

    def __init__(self, record: RequestRecord) -> None:
        self.record = record

    def __str__(self) -> str:
        return text_line(self.record)


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
