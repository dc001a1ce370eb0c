"""This process's own fixed-window count of one kind of attempt per user: what it can decide
before a request's body is read, with no round trip. It never lets more than `limit` attempts
per window through, and remembers a refusal learnt elsewhere (Redis's count, which covers
every process) until that window resets."""

from __future__ import annotations

import time

MAX_USERS = 100_000  # beyond this, windows that ended are dropped (never unbounded)


class LocalWindows:
    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[int, list[float]] = {}  # user -> [window end, attempts]

    def hit(self, user_id: int) -> float | None:
        """Count one attempt; the seconds until the window resets when over the limit."""
        now = time.monotonic()
        window = self._windows.get(user_id)
        if window is None or window[0] <= now:
            if len(self._windows) >= MAX_USERS:
                self._prune(now)
            window = self._windows[user_id] = [now + self.window_s, 0.0]
        window[1] += 1
        return window[0] - now if window[1] > self.limit else None

    def refused_until(self, user_id: int, seconds: float) -> None:
        """A refusal from elsewhere: every attempt is refused here for `seconds`."""
        end = time.monotonic() + seconds
        window = self._windows.get(user_id)
        if window is None or window[0] < end:
            self._windows[user_id] = [end, float(self.limit)]
        else:
            window[1] = max(window[1], float(self.limit))

    def _prune(self, now: float) -> None:
        self._windows = {u: w for u, w in self._windows.items() if w[0] > now}
        if len(self._windows) >= MAX_USERS:
            self._windows.clear()
