"""What the crowd reads most, kept in this process: the event list's answers, already encoded,
and each event's row. Both are keyed by the event-list generation, which every change to an
event bumps (in Redis, so every API process sees it in its next request); the generation is
read on every request, in the same round trip as the live counts.

- The list's answer for a (page, limit) is reused as bytes while the generation is unchanged
  and its live counts are at most COUNTS_MAX_AGE old (250 ms): under a crowd that is one
  Redis round trip and no encoding per request.
- An event's row (name, venue, time, capacity, impressions flushed so far, ...) is read from
  Postgres once per generation; a flush of view counts (the pending count going down) reads
  it again, so impressions never go backwards."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from api.schemas import EventOut

COUNTS_MAX_AGE = 0.25
MAX_PAGES = 512  # (page, limit) pairs kept; more are dropped wholesale, never unbounded


@dataclass(slots=True)
class ListedPage:
    generation: int
    events: list[EventOut]
    total: int
    source: str
    counted_at: float = 0.0
    body: bytes = b""


@dataclass(slots=True)
class EventRow:
    generation: int
    row: Any
    out: EventOut  # as the page shows it, without its live counts
    pending_views: int = 0


# How long the last generation read by a list or page request stands for the status route,
# which then reads no generation of its own: an event renamed shows in a booking's status
# within this long.
GENERATION_MAX_AGE = 1.0


@dataclass
class Catalog:
    pages: dict[tuple[int, int], ListedPage] = field(default_factory=dict)
    rows: dict[int, EventRow] = field(default_factory=dict)
    generation: int = -1
    generation_at: float = 0.0
    displays: dict[int, tuple[int, tuple[str, str, str]]] = field(default_factory=dict)

    def saw_generation(self, generation: int) -> int:
        self.generation, self.generation_at = generation, time.monotonic()
        return generation

    def recent_generation(self) -> int | None:
        """The generation read less than GENERATION_MAX_AGE ago, if any."""
        if time.monotonic() - self.generation_at < GENERATION_MAX_AGE:
            return self.generation
        return None

    def page(self, generation: int, page: int, limit: int) -> ListedPage | None:
        found = self.pages.get((page, limit))
        return found if found is not None and found.generation == generation else None

    def keep_page(self, page: int, limit: int, listed: ListedPage) -> None:
        if len(self.pages) >= MAX_PAGES:
            self.pages.clear()
        self.pages[(page, limit)] = listed

    @staticmethod
    def fresh(listed: ListedPage) -> bool:
        return bool(listed.body) and time.monotonic() - listed.counted_at < COUNTS_MAX_AGE

    def row(self, generation: int, event_id: int, pending_views: int) -> EventRow | None:
        """The event's row if read in this generation and no view flush happened since."""
        found = self.rows.get(event_id)
        if found is None or found.generation != generation:
            return None
        if pending_views < found.pending_views:
            return None  # views were flushed to Postgres: its `impressions` grew
        found.pending_views = pending_views
        return found

    def keep_row(
        self, generation: int, event_id: int, row: Any, out: EventOut, pending_views: int
    ) -> EventRow:
        if len(self.rows) >= 100_000:
            self.rows.clear()
        kept = self.rows[event_id] = EventRow(generation, row, out, pending_views)
        return kept

    def display(self, generation: int, event_id: int) -> tuple[str, str, str] | None:
        """An event's (name, venue, time) as known in this generation, if known."""
        row = self.rows.get(event_id)
        if row is not None and row.generation == generation:
            return row.row["name"], row.row["venue"], row.row["time"].isoformat()
        found = self.displays.get(event_id)
        return found[1] if found is not None and found[0] == generation else None

    def keep_display(self, generation: int, event_id: int, display: tuple[str, str, str]) -> None:
        if len(self.displays) >= 100_000:
            self.displays.clear()
        self.displays[event_id] = (generation, display)

    def listed_event(self, event_id: int) -> EventOut | None:
        """An event as some cached list page shows it (a last resort while Postgres is down)."""
        for listed in self.pages.values():
            for event in listed.events:
                if event.id == event_id:
                    return event
        return None
