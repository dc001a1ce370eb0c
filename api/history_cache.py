"""Pages of booking history kept in this process, already encoded, so a user who polls their
history costs one small Redis call and no Postgres query while nothing of theirs changed.

A page is the merge of the user's Postgres rows and the records Redis holds that Postgres does
not yet. Every script that changes a booking record (book, hold, confirm, release, expiry,
cancel) marks its user (with 63 neighbours: engine.booking.CHANGE_MARK_USERS) in the shard's
`changed` zset with Redis's clock, and so do the
write-behind's ack (a record leaving Redis's pending index for Postgres) and a recovery's
restore. A page is reused only while all of this holds:
- no change mark of its user is as late as the page's own read (read first, before the
  pending records and Postgres, so a change after it always shows as one);
- the event-list generation is the same (a renamed event shows at once);
- the engine's gate has not closed and opened since (a recovery moves records between Redis
  and Postgres behind the marks' back), and is open now;
- it is younger than MAX_AGE_S, far inside the marks' keep (CHANGE_MARKS_KEEP_MS), and
  bounds anything else (an operator's SQL).
Pages built while Postgres was down (Redis's records alone) are never kept."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from engine.booking import CHANGE_MARKS_KEEP_MS
from engine.reads import UserChanges

MAX_AGE_S = 15.0
MAX_BYTES = 32 * 1024 * 1024  # pages kept in all; the least recently read go first
# What a kept page costs beyond its body (key, entry, tuples): counted, so that a client asking
# for endless empty pages (`?page=N`, a 2-byte body each) cannot grow the process unbounded.
ENTRY_OVERHEAD = 256
assert MAX_AGE_S * 1000 * 4 <= CHANGE_MARKS_KEEP_MS, "a page must never outlive its marks"


@dataclass(frozen=True, slots=True)
class _Page:
    generation: int
    openings: int
    read_at: tuple[int, ...]  # Redis ms of each changes.lua call the page was read after
    made_at: float
    body: bytes


class HistoryCache:
    def __init__(self, max_bytes: int = MAX_BYTES, max_age_s: float = MAX_AGE_S) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._pages: OrderedDict[tuple[int, int, int], _Page] = OrderedDict()
        self._bytes = 0

    def get(
        self, user_id: int, page: int, limit: int, changes: UserChanges, openings: int
    ) -> bytes | None:
        key = (user_id, page, limit)
        kept = self._pages.get(key)
        if kept is None:
            return None
        if (
            kept.generation != changes.generation
            or kept.openings != openings
            or time.monotonic() - kept.made_at >= self.max_age_s
            or len(kept.read_at) != len(changes.clocks)
            or any(
                last >= read for (_, last), read in zip(changes.clocks, kept.read_at, strict=True)
            )
        ):
            self._drop(key)
            return None
        self._pages.move_to_end(key)
        return kept.body

    def keep(
        self,
        user_id: int,
        page: int,
        limit: int,
        changes: UserChanges,
        openings: int,
        body: bytes,
    ) -> None:
        key = (user_id, page, limit)
        self._drop(key)
        if len(body) + ENTRY_OVERHEAD > self.max_bytes:
            return
        read_at = tuple(now for now, _ in changes.clocks)
        self._pages[key] = _Page(changes.generation, openings, read_at, time.monotonic(), body)
        self._bytes += len(body) + ENTRY_OVERHEAD
        while self._bytes > self.max_bytes:
            _, oldest = self._pages.popitem(last=False)
            self._bytes -= len(oldest.body) + ENTRY_OVERHEAD

    def __len__(self) -> int:
        return len(self._pages)

    def _drop(self, key: tuple[int, int, int]) -> None:
        gone = self._pages.pop(key, None)
        if gone is not None:
            self._bytes -= len(gone.body) + ENTRY_OVERHEAD
