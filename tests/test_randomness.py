"""engine.randomness: bulk-read tokens stay unique, across a fork too."""

from __future__ import annotations

import os

from engine import randomness


def test_tokens_are_unique_and_sized() -> None:
    tokens = [randomness.token_hex(12) for _ in range(5000)]  # crosses several 8 KiB reads
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 24 and int(t, 16) >= 0 for t in tokens)


def test_forked_child_does_not_repeat_the_parents_next_token() -> None:
    randomness.token_hex(12)  # the parent now holds buffered bytes a child would inherit
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        os.write(write_end, randomness.token_hex(12).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 24
    assert randomness.token_hex(12) != child
