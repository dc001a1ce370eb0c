"""What this process can prove Redis must hold, per shard, and the gate built on it.

Every booking id is `tick * SHARD_SPACE + shard`, and a shard's Redis keeps its last tick
("seq" in the shard's stats hash). A Redis that holds a tick lower than one this process has
seen (in an id a script answered, or persisted in Postgres) has come back older than it was:
its counters may miss seats already sold. Every seat-changing script is handed the shard's
floor and refuses (INVENTORY_NOT_READY) when Redis is behind it, or while the shard is frozen
for recovery; so even a process that never saw the old Redis cannot sell on rolled-back data
once Postgres's floor is known. The gate (`ready`) closes the engine as a whole while the
inventory watcher recovers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.keys import KeySpace


class Fence:
    def __init__(self, shard_count: int) -> None:
        self.floors = [0] * shard_count
        # Open unless a watcher closes it: a process without one (the persister's expirer,
        # tools) relies on the scripts' own fence and frozen flag.
        self._ready = True
        # How many times the gate opened after being closed: what a process keeps of Redis's
        # state (history's pages) is good only within one opening, since a recovery between
        # two may have moved records between Redis and Postgres behind its back.
        self.openings = 0
        self.refusal_listeners: list[Callable[[], None]] = []

    @property
    def ready(self) -> bool:
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        if value and not self._ready:
            self.openings += 1
        self._ready = value

    def floor(self, shard: int) -> int:
        return self.floors[shard]

    def saw(self, booking_id: int) -> None:
        """A script answered with this id: its shard's Redis holds at least its tick."""
        shard = KeySpace.shard_of_booking(booking_id)
        tick = KeySpace.tick_of_booking(booking_id)
        if shard < len(self.floors) and tick > self.floors[shard]:
            self.floors[shard] = tick

    def raise_floors(self, ticks: Mapping[int, int]) -> None:
        """Floors known from elsewhere (Postgres's highest persisted id per shard)."""
        for shard, tick in ticks.items():
            if shard < len(self.floors) and tick > self.floors[shard]:
                self.floors[shard] = tick

    def refused(self) -> None:
        """A script found its Redis behind or frozen: tell whoever recovers it."""
        for listener in self.refusal_listeners:
            listener()
