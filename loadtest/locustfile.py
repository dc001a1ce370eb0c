"""Realistic load for a running boxoffice, with locust (the `loadtest` extra:
`pip install -e '.[loadtest]'`).

- Shoppers register (or reuse pre-made tokens from --tokens-file), then browse the event list
  (70%), view one event (20%) and book (10%); after a booking they check its status, and now
  and then cancel it. 409 SOLD_OUT / LIMIT_EXCEEDED are answers a shopper expects, not
  failures; anything else unexpected is a failure.
- The flash sale: --flash-at seconds into the run every shopper drops what it is doing and
  books the same hot event (--hot-event, default the first listed), all at once.
- One admin (with --admin-email/--admin-password) watches the queue stats every 2 s and the
  analytics now and then; it creates --events events first if there are none.

Headless, writing locust's HTML report and CSVs, against a `boxoffice serve` on :3000 started
with BOXOFFICE_RATE_LIMITS=off (all shoppers come from one IP: the per-IP register limit
would refuse most of them) and an admin made with
`boxoffice create-admin admin@example.com --password 'S3cret-pass'`:

    locust -f loadtest/locustfile.py --headless -u 200 -r 50 -t 2m \\
        --host http://127.0.0.1:3000 \\
        --admin-email admin@example.com --admin-password 'S3cret-pass' \\
        --html docs/locust-report.html --csv docs/locust

Registering costs an argon2 hash on the server per shopper; to measure bookings rather than
sign-ups, pass --tokens-file with one bearer token a line.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

from locust import HttpUser, TaskSet, between, events, task
from locust.exception import StopUser

from loadtest.shoppers import shopper_password

# What every shopper shares: the run's start, the events seen, the hot event.
_STATE: dict[str, Any] = {"started": time.monotonic(), "events": [], "hot": None}
_tokens: itertools.cycle[str] | None = None


def _options(parser: Any) -> None:
    group = parser.add_argument_group("boxoffice")
    group.add_argument("--tokens-file", default="", help="reuse these tokens (one a line)")
    group.add_argument("--flash-at", type=float, default=30.0, help="flash sale at T s; 0: none")
    group.add_argument("--hot-event", type=int, default=0, help="the flash sale's event id")
    group.add_argument("--admin-email", default="", help="admin that watches the queue")
    group.add_argument("--admin-password", default="", help="its password")
    group.add_argument("--events", type=int, default=10, help="events the admin creates if none")


def _started(environment: Any, **_: Any) -> None:
    global _tokens
    _STATE["started"] = time.monotonic()
    path = environment.parsed_options.tokens_file if environment.parsed_options else ""
    if path:
        with open(path) as f:
            _tokens = itertools.cycle([line.strip() for line in f if line.strip()])


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_started)  # type: ignore[no-untyped-call]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Shopping(TaskSet):
    """Weighted browsing and booking; the flash sale pre-empts whatever comes next."""

    user: Shopper

    def get_next_task(self) -> Callable[..., Any]:
        if self.user.flash_due():
            return Shopping.flash_sale
        return super().get_next_task()  # type: ignore[no-untyped-call,no-any-return]

    # The crowd's shape, as the bench's crowd mix: 60% list, 25% event page, 10% polling a
    # booking's status, 5% booking (whose answer is then polled once and sometimes cancelled).
    @task(60)
    def browse(self) -> None:
        page = random.randint(1, 3)
        with self.client.get(
            f"/api/events/view?page={page}&limit=20", name="/api/events/view", catch_response=True
        ) as response:
            if response.status_code == 200:
                data = response.json().get("data", [])
                if data:
                    _STATE["events"] = sorted({*_STATE["events"], *(e["id"] for e in data)})
                response.success()

    @task(25)
    def view(self) -> None:
        event_id = self.user.some_event()
        if event_id is not None:
            self.client.get(f"/api/events/{event_id}/view", name="/api/events/[id]/view")

    @task(10)
    def poll(self) -> None:
        """The original's clients poll their booking's status until it is decided."""
        if self.user.job_ids:
            job_id = random.choice(self.user.job_ids)
            self.client.get(f"/api/bookings/status/{job_id}", name="/api/bookings/status/[jobId]")

    @task(5)
    def book(self) -> None:
        event_id = self.user.some_event()
        if event_id is not None:
            self.user.book(event_id, "/api/bookings/[id]/book")

    def flash_sale(self) -> None:
        self.user.flashed = True
        hot = _STATE["hot"] or self.user.some_event(first=True)
        if hot is not None:
            self.user.book(hot, "/api/bookings/[hot]/book (flash sale)")


class Shopper(HttpUser):
    tasks = [Shopping]
    weight = 100

    def on_start(self) -> None:
        self.flashed = False
        self.job_ids: list[str] = []
        options = self.environment.parsed_options
        self.flash_at = float(options.flash_at) if options else 0.0
        if options and options.hot_event:
            _STATE["hot"] = options.hot_event
        self.token = next(_tokens) if _tokens is not None else self._register()

    def _register(self) -> str:
        email = f"shopper-{secrets.token_hex(6)}@example.com"
        body = {"name": "Shopper", "email": email, "password": shopper_password()}
        response = self.client.post("/api/auth/register", json=body)
        if response.status_code != 200:
            raise StopUser()
        return str(response.json()["token"])

    def wait_time(self) -> float:
        """0.5-2 s between actions, but wake exactly at the flash sale."""
        wait = random.uniform(0.5, 2.0)
        until = self._flash_moment() - time.monotonic()
        if not self.flashed and self.flash_at and 0 <= until < wait:
            return until
        return wait

    def _flash_moment(self) -> float:
        return float(_STATE["started"]) + self.flash_at

    def flash_due(self) -> bool:
        return bool(self.flash_at) and not self.flashed and time.monotonic() >= self._flash_moment()

    def some_event(self, first: bool = False) -> int | None:
        known: list[int] = _STATE["events"]
        if not known:
            response = self.client.get("/api/events/view?limit=100", name="/api/events/view")
            if response.status_code == 200:
                _STATE["events"] = known = sorted(e["id"] for e in response.json()["data"])
        if not known:
            return None
        return known[0] if first else random.choice(known)

    def book(self, event_id: int, name: str) -> None:
        with self.client.post(
            f"/api/bookings/{event_id}/book",
            headers=_auth(self.token),
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code == 409 and response.json().get("code") in {
                "SOLD_OUT",
                "LIMIT_EXCEEDED",
            }:
                response.success()  # a shopper's expected disappointment
                return
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            answer = response.json()
        self.job_ids.append(answer["jobId"])
        self.client.get(answer["statusEndpoint"], name="/api/bookings/status/[jobId]")
        if random.random() < 0.2:
            self.client.delete(
                f"/api/bookings/{answer['booking']['id']}/cancel",
                headers=_auth(self.token),
                name="/api/bookings/[id]/cancel",
            )


class Admin(HttpUser):
    """One operator: creates events if there are none, then watches the queue."""

    fixed_count = 1
    wait_time = between(2, 2)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if not options or not options.admin_email:
            raise StopUser()
        response = self.client.post(
            "/api/auth/login",
            json={"email": options.admin_email, "password": options.admin_password},
            name="/api/auth/login (admin)",
        )
        if response.status_code != 200:
            raise StopUser()
        self.headers = _auth(response.json()["token"])
        listed = self.client.get("/api/events/view?limit=1", name="/api/events/view")
        if listed.status_code == 200 and not listed.json().get("total"):
            for n in range(options.events):
                self.client.post(
                    "/api/events/create",
                    headers=self.headers,
                    name="/api/events/create",
                    json={
                        "name": f"Load test event {n + 1}",
                        "venue": "Main hall",
                        "time": "2030-01-01T20:00:00Z",
                        "capacity": 1_000_000,
                        "maxPerUser": 10,
                    },
                )

    @task(5)
    def queue_stats(self) -> None:
        self.client.get("/api/admin/queue/stats", headers=self.headers)

    @task(1)
    def analytics(self) -> None:
        self.client.get("/api/admin/analytics", headers=self.headers)
