"""The booking record: what a script writes to the bookings hash and the outbox, verbatim."""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal["CONFIRMED", "CANCELLED", "HELD", "RELEASED", "EXPIRED"]


class Record(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One version of one booking, as the Lua scripts encode it (short keys keep Redis small).

    `v` grows by one on every change, so the persister can apply versions in any order.
    Only ints and strings, so never part of a cycle: gc=False keeps the journal's 100,000
    records out of the collector's full passes (pauses that showed in the p99).
    Times are Redis server milliseconds since the epoch: `t` when the seats were first taken
    (booked, or held), `ut` this version. `x` is a hold's expiry (0, and left out of the JSON,
    for a booking that never was a hold); it stays on every later version of the hold.
    """

    id: int
    e: int
    u: int
    s: int
    st: Status
    v: int
    j: str
    t: int
    ut: int
    x: int = 0

    @property
    def booking_id(self) -> int:
        return self.id

    @property
    def event_id(self) -> int:
        return self.e

    @property
    def user_id(self) -> int:
        return self.u

    @property
    def seats(self) -> int:
        return self.s

    @property
    def status(self) -> Status:
        return self.st

    @property
    def version(self) -> int:
        return self.v

    @property
    def job_id(self) -> str:
        return self.j

    @property
    def confirmed_ms(self) -> int:
        return self.t

    @property
    def updated_ms(self) -> int:
        return self.ut

    @property
    def expires_ms(self) -> int:
        return self.x


_decoder = msgspec.json.Decoder(Record)


def is_record(raw: bytes | str) -> bool:
    """A bookings-hash value is a record (JSON) or a tombstone (the evicted version's number)."""
    return raw[:1] in (b"{", "{")


def tombstone_version(raw: bytes | str) -> int:
    """The version an evicted record had when it was persisted (see lua/ack.lua)."""
    return int(raw)


def decode_record(raw: bytes | str) -> Record:
    """Raises msgspec.DecodeError/ValidationError on a malformed record (a poison record)."""
    return _decoder.decode(raw)


class Inventory(msgspec.Struct, frozen=True):
    """The live counts of one event, as Redis holds them."""

    capacity: int
    available: int
    sold: int
    held: int
    max_per_user: int
    open: bool


_encoder = msgspec.json.Encoder()


def encode_record(record: Record) -> bytes:
    """The record as the Lua scripts read it (cjson)."""
    return _encoder.encode(record)
