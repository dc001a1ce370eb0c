"""Writes docs/boxoffice.postman_collection.json from the OpenAPI document, so the collection
cannot drift from the routes.

    python docs/generate_postman.py           # rewrite the collection
    python docs/generate_postman.py --check   # exit 1 if it is stale

Each request is an operation of the spec (its summary, method, path, auth and documented
success status), played as one user's session: STEPS orders them and gives the example
bodies and the variables each answer feeds to later requests. A step whose route this build
does not serve is left out; an operation no step plays stops the generator, so a new route
needs a step here. Each request's test checks the documented status and content type; newman
runs the collection in tests/test_postman.py against a real server with an admin made by
`boxoffice create-admin` (`adminEmail` / `adminPassword` collection variables) and
BOXOFFICE_METRICS_TOKEN set (`metricsToken`).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere, installed or not
    sys.path.insert(0, str(ROOT))

from api.app import init_app  # noqa: E402
from api.openapi import build_spec  # noqa: E402
from docs.generated import write_or_check  # noqa: E402
from engine.config import Config  # noqa: E402

TARGET = ROOT / "docs" / "boxoffice.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
PATH_VARIABLES = {"id": "eventId", "job_id": "jobId", "hold_id": "holdId"}


@dataclass(frozen=True)
class Step:
    """One request: an operation of the spec, played with these values."""

    folder: str
    method: str
    path: str
    name: str = ""  # defaults to the operation's summary
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    path_values: dict[str, str] = field(default_factory=dict)
    token: str = "userToken"  # the variable holding the bearer token, if the route needs one
    headers: dict[str, str] = field(default_factory=dict)
    captures: dict[str, str] = field(default_factory=dict)  # variable -> JS expression on `j`
    idempotent_key: bool = False
    prerequest: tuple[str, ...] = ()


_NEW_USER = (
    "if (!pm.collectionVariables.get('userEmail')) {",
    "  pm.collectionVariables.set('userEmail', 'fan-' + Date.now() + '@example.com');",
    "}",
)
_EVENT = {
    "name": "Postman Live",
    "venue": "Hall 1",
    "time": "2027-06-01T20:00:00Z",
    "capacity": 100,
    "maxPerUser": 4,
}
A = "adminToken"
_USER_SESSION = {"userToken": "j.token", "userRefreshToken": "j.refreshToken || ''"}

STEPS: tuple[Step, ...] = (
    Step("Pages and health", "GET", "/", name="Landing page"),
    Step("Pages and health", "GET", "/readme"),
    Step("Pages and health", "GET", "/healthz"),
    Step("Pages and health", "GET", "/readyz"),
    Step(
        "Pages and health", "GET", "/metrics",
        headers={"Authorization": "Bearer {{metricsToken}}"},  # BOXOFFICE_METRICS_TOKEN
    ),
    Step("Pages and health", "GET", "/api/openapi.json"),
    Step(
        "Auth", "POST", "/api/auth/register", prerequest=_NEW_USER,
        body={"name": "Fan", "email": "{{userEmail}}", "password": "{{userPassword}}"},
        captures={"userToken": "j.token"},
    ),
    Step(
        "Auth", "POST", "/api/auth/login", name="Log in (user)",
        body={"email": "{{userEmail}}", "password": "{{userPassword}}"}, captures=_USER_SESSION,
    ),
    Step(
        "Auth", "POST", "/api/auth/login", name="Log in (admin)",
        body={"email": "{{adminEmail}}", "password": "{{adminPassword}}"},
        captures={"adminToken": "j.token"},
    ),
    Step("Auth", "GET", "/api/auth/me"),
    Step(
        "Auth", "POST", "/api/auth/refresh", body={"refreshToken": "{{userRefreshToken}}"},
        captures=_USER_SESSION,
    ),
    Step(
        "Events", "POST", "/api/events/create", body=_EVENT, captures={"eventId": "j.id"},
        token=A,
    ),
    Step("Events", "GET", "/api/events/view", query={"page": "1", "limit": "20"}),
    Step("Events", "GET", "/api/events/{id}/view"),
    Step("Events", "PUT", "/api/events/{id}/update", body={"capacity": 120}, token=A),
    Step(
        "Events", "PUT", "/api/admin/events/{id}/hold-policy", body={"maxHoldSeconds": 600},
        token=A,
    ),
    Step("Events", "GET", "/api/admin/events/{id}/hold-policy", token=A),
    Step(
        "Bookings", "POST", "/api/bookings/{id}/book", body={"seats": 1}, idempotent_key=True,
        captures={"jobId": "j.jobId", "bookingId": "j.booking.id"},
    ),
    Step("Bookings", "GET", "/api/bookings/status/{job_id}"),
    Step("Bookings", "GET", "/api/bookings/history", query={"page": "1", "limit": "20"}),
    Step(
        "Bookings", "POST", "/api/bookings/{id}/hold", body={"seats": 1, "ttlSeconds": 300},
        captures={"holdId": "j.holdId"},
    ),
    Step("Bookings", "POST", "/api/bookings/holds/{hold_id}/confirm"),
    Step(
        "Bookings", "POST", "/api/bookings/{id}/hold", name="Hold a seat to release it",
        body={"seats": 1}, captures={"holdId": "j.holdId"},
    ),
    Step("Bookings", "DELETE", "/api/bookings/holds/{hold_id}"),
    Step("Bookings", "DELETE", "/api/bookings/{id}/cancel", path_values={"id": "bookingId"}),
    Step("Admin", "GET", "/api/admin/analytics", token=A),
    Step("Admin", "GET", "/api/admin/queue/stats", token=A),
    Step("Admin", "GET", "/api/admin/queue/details", query={"limit": "5"}, token=A),
    Step("Admin", "POST", "/api/admin/queue/pause", token=A),
    Step("Admin", "POST", "/api/admin/queue/resume", token=A),
    Step("Admin", "POST", "/api/admin/queue/clean", token=A),
    Step("Admin", "GET", "/api/admin/reconcile", token=A),
    Step("Admin", "POST", "/api/admin/reconcile", query={"eventId": "{{eventId}}"}, token=A),
    Step("Cleanup", "DELETE", "/api/events/{id}/delete", query={"force": "true"}, token=A),
    Step(
        "Sessions", "POST", "/api/auth/password",
        body={"currentPassword": "{{userPassword}}", "newPassword": "{{userNewPassword}}"},
        captures={"userToken": "j.token"},
    ),
    Step("Sessions", "POST", "/api/auth/logout-all"),
    Step(
        "Sessions", "POST", "/api/auth/login", name="Log in with the new password",
        body={"email": "{{userEmail}}", "password": "{{userNewPassword}}"},
        captures=_USER_SESSION,
    ),
    Step("Sessions", "POST", "/api/auth/logout", body={"refreshToken": "{{userRefreshToken}}"}),
)  # fmt: skip

VARIABLES = {
    "baseUrl": "http://127.0.0.1:3000",
    "adminEmail": "admin@boxoffice.local",
    "adminPassword": "see .boxoffice/admin-password",
    "userEmail": "",
    "userPassword": "Fan-pass-4242",
    "userNewPassword": "Fan-pass-5353",
    "metricsToken": "the server's BOXOFFICE_METRICS_TOKEN",
}


def spec() -> dict[str, Any]:
    """The OpenAPI document of this build (routes only: nothing is connected)."""
    config = Config.from_env({"JWT_SECRET": "postman-generator-secret-of-32-bytes-and-more"})
    return build_spec(init_app(config))


def _url(step: Step) -> dict[str, Any]:
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        return "{{" + step.path_values.get(name, PATH_VARIABLES.get(name, name)) + "}}"

    path = re.sub(r"\{(\w+)\}", variable, step.path)
    query = [{"key": k, "value": v} for k, v in step.query.items()]
    raw = "{{baseUrl}}" + path + ("?" + "&".join(f"{k}={v}" for k, v in step.query.items()))
    url: dict[str, Any] = {
        "raw": raw.rstrip("?"),
        "host": ["{{baseUrl}}"],
        "path": [p for p in path.split("/") if p],
    }
    if query:
        url["query"] = query
    return url


def _test_script(step: Step, status: str, content_type: str) -> list[str]:
    lines = [
        f"pm.test('answers {status}', function () {{",
        f"  pm.response.to.have.status({status});",
        "});",
        "pm.test('content type', function () {",
        f"  pm.expect(pm.response.headers.get('Content-Type')).to.include('{content_type}');",
        "});",
    ]
    if step.captures:
        lines.append("const j = pm.response.json();")
        lines += [f"pm.collectionVariables.set('{k}', {v});" for k, v in step.captures.items()]
    return lines


def _item(step: Step, operation: dict[str, Any]) -> dict[str, Any]:
    status, answer = next(iter(operation["responses"].items()))
    content_type = next(iter(answer.get("content", {"application/json": {}})))
    headers = []
    if operation.get("security"):
        headers.append({"key": "Authorization", "value": "Bearer {{" + step.token + "}}"})
    headers += [{"key": k, "value": v} for k, v in step.headers.items()]
    if step.idempotent_key:
        headers.append({"key": "Idempotency-Key", "value": "{{$guid}}"})
    request: dict[str, Any] = {
        "method": step.method,
        "header": headers,
        "url": _url(step),
        "description": operation["summary"],
    }
    if step.body is not None:
        headers.append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps(step.body, indent=2)}
    events = [
        {
            "listen": "test",
            "script": {"type": "text/javascript", "exec": _test_script(step, status, content_type)},
        }
    ]
    if step.prerequest:
        events.insert(
            0,
            {
                "listen": "prerequest",
                "script": {"type": "text/javascript", "exec": list(step.prerequest)},
            },
        )
    return {"name": step.name or operation["summary"], "event": events, "request": request}


def build(document: dict[str, Any]) -> dict[str, Any]:
    served = {(m.upper(), p): op for p, ops in document["paths"].items() for m, op in ops.items()}
    played = [s for s in STEPS if (s.method, s.path) in served]
    missing = sorted(set(served) - {(s.method, s.path) for s in played})
    if missing:
        raise SystemExit(f"operations with no step in docs/generate_postman.py: {missing}")
    folders: dict[str, list[dict[str, Any]]] = {}
    for step in played:
        if step.folder in folders and step.folder != list(folders)[-1]:
            # newman runs folders in order: a step filed back into an earlier folder would
            # run before the steps it follows in STEPS.
            raise SystemExit(f"STEPS return to folder {step.folder!r}: keep each folder together")
        folders.setdefault(step.folder, []).append(_item(step, served[(step.method, step.path)]))
    return {
        "info": {
            "name": "boxoffice",
            "description": "Generated by `python docs/generate_postman.py` from the OpenAPI "
            "document. Set baseUrl, adminEmail, adminPassword, metricsToken; run in order.",
            "schema": SCHEMA,
        },
        "item": [{"name": name, "item": items} for name, items in folders.items()],
        "variable": [{"key": k, "value": v} for k, v in VARIABLES.items()],
    }


def render() -> str:
    return json.dumps(build(spec()), indent=2) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(TARGET, render(), argv, "docs/generate_postman.py")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
