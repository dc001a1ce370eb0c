"""Unguessable tokens without a system call each: os.urandom is read 8 KiB at a time.
Per booking, `secrets.token_hex` cost ~7% of the request (one getrandom() syscall each);
the bytes are the same kernel CSPRNG's, only fetched in bulk. A forked child drops the
bytes it inherited (`os.register_at_fork`), so it never repeats its parent's tokens; a
per-call `os.getpid()` check did the same for ~4% of a booking (glibc makes it a syscall)."""

from __future__ import annotations

import os

_CHUNK = 8192


class RandomPool:
    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def forget(self) -> None:
        """Drop the buffered bytes: the next token reads fresh ones from the kernel."""
        self._buffer, self._offset = b"", 0

    def token_hex(self, nbytes: int) -> str:
        if self._offset + nbytes > len(self._buffer):
            self._buffer, self._offset = os.urandom(_CHUNK), 0
        start = self._offset
        self._offset += nbytes
        return self._buffer[start : self._offset].hex()


_pool = RandomPool()
os.register_at_fork(after_in_child=_pool.forget)
token_hex = _pool.token_hex
