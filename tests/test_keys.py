"""Key names: one hash tag per shard, a configurable prefix, a stable shard function."""

from __future__ import annotations

import re

import pytest

from engine.keys import KeySpace


def tag(key: str) -> str:
    match = re.search(r"\{([^}]*)\}", key)
    assert match, key
    return match.group(1)


def test_all_keys_of_an_event_share_one_hash_tag():
    keys = KeySpace("p", 16)
    ek = keys.event(42)
    sk = ek.shard_keys
    names = [ek.inventory, ek.users, sk.bookings, sk.outbox, sk.pending, sk.inflight, sk.dead]
    names.append(keys.idempotency(ek.shard, 5, "abc"))
    names.append(keys.idempotency(ek.shard, 5, ""))  # the placeholder when no key is sent
    assert {tag(n) for n in names} == {"s10"}
    assert keys.event(42) is ek  # remembered, not rebuilt per booking
    assert all(n.startswith("p:") for n in names)


def test_shard_is_a_stable_function_of_the_event_id():
    assert KeySpace("a", 16).shard_of_event(42) == KeySpace("b", 16).shard_of_event(42) == 10
    assert KeySpace.shard_of_booking(7 * 1024 + 10) == 10


def test_shard_count_is_bounded():
    with pytest.raises(ValueError):
        KeySpace("p", 0)
    with pytest.raises(ValueError):
        KeySpace("p", 1025)
