"""Server-sent events framing: bytes <-> events, with no knowledge of what the data means.

The decoder follows the WHATWG "event stream interpretation" rules, with two deliberate
deviations that upstreams in the wild need:

- `close()` dispatches a last event that lacks its terminating blank line (the spec discards it);
  several OpenAI-compatible servers end the body right after the final `data:` line.
- An empty `event:` value is reported as `None`, the same as no `event:` field (the spec maps
  both to "message").

`id` follows the spec's "last event ID buffer": once set it sticks to every later event until
another `id:` line changes it. `retry` is reported on the next dispatched event only.

Lines are split on bytes before decoding. CR and LF never occur inside a UTF-8 multi-byte
sequence, so a character split across two chunks is always reassembled before it is decoded.
"""

from __future__ import annotations

from proxy.frozen import frozen

_BOM = b"\xef\xbb\xbf"


@frozen
class SSEEvent:
    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed any chunking of a stream and get the same events.

    Per-chunk work is done with `bytes.find`/`split`/`replace`; the only Python loop runs once
    per line, never per byte.
    """

    __slots__ = (
        "_data",
        "_event",
        "_last_id",
        "_partial",
        "_pending_bom",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the pieces of the current, unterminated line
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF completes a CRLF
        self._started = False  # the BOM check is done
        self._pending_bom = b""  # a BOM prefix: the BOM itself may arrive split over chunks
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._partial.append(chunk)
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial.clear()
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        return self._process(lines)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush an unterminated last line and a last event without blank line."""
        lines: list[bytes] = []
        if self._partial:
            lines.append(b"".join(self._partial))
            self._partial.clear()
        elif not self._started and self._pending_bom:
            lines.append(self._pending_bom)
        self._pending_bom = b""
        self._started = True
        lines.append(b"")
        return self._process(lines)

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = self._pending_bom + chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._pending_bom = head
            return b""
        self._pending_bom = b""
        self._started = True
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(
                        SSEEvent(
                            self._event,
                            (data[0] if len(data) == 1 else b"\n".join(data)).decode(
                                "utf-8", "replace"
                            ),
                            self._last_id,
                            self._retry,
                        )
                    )
                    data.clear()
                    self._retry = None
                self._event = None
                continue
            if line.startswith(b"data: "):  # the common case, without the generic split
                data.append(line[6:])
                continue
            if line[0] == 0x3A:  # ":" starts a comment (keep-alives)
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace") or None
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                self._retry = int(value)
        return events


def encode_event(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE event. Line breaks in `data` become several `data:` lines, so they survive."""
    raw = data.encode() if isinstance(data, str) else data
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\n" in raw:
        raw = raw.replace(b"\n", b"\ndata: ")
    if event is None:
        return b"data: " + raw + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + raw + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A comment line: clients ignore it, proxies and idle timers see traffic (keep-alive)."""
    return b": " + text.encode().replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n"
