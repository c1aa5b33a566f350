"""The last requests, in memory, for the status page (the journal is for history)."""

from __future__ import annotations

from collections import deque

from proxy.observe.record import RequestRecord

RECENT_LIMIT = 200


class RecentRequests:
    def __init__(self, limit: int = RECENT_LIMIT) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def newest(self, n: int) -> list[RequestRecord]:
        """Up to `n` records, newest first."""
        out: list[RequestRecord] = []
        for record in reversed(self._records):
            if len(out) >= n:
                break
            out.append(record)
        return out
