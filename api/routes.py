"""The route table: the original's paths and methods, plus ours."""

from __future__ import annotations

from aiohttp import web

from api.metrics import metrics_view
from api.openapi import build_on_startup, openapi_view
from api.pages.console import setup_console
from api.pages.docs import setup_docs
from api.pages.landing import landing, readme
from api.views import admin, bookings, events, health, holdpolicy, holds, users


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/auth/register", users.register)
    r.add_post("/api/auth/login", users.login)
    r.add_get("/api/auth/me", users.me)
    r.add_post("/api/auth/refresh", users.refresh)
    r.add_post("/api/auth/logout", users.logout)
    r.add_post("/api/auth/logout-all", users.logout_all)
    r.add_post("/api/auth/password", users.change_password)

    r.add_get("/api/events/view", events.list_events)
    r.add_get("/api/events/{id}/view", events.view_event)
    r.add_post("/api/events/create", events.create_event)
    r.add_put("/api/events/{id}/update", events.update_event)
    r.add_delete("/api/events/{id}/delete", events.delete_event)

    r.add_post("/api/bookings/{id}/book", bookings.book)
    r.add_get("/api/bookings/status/{job_id:.*}", bookings.job_status)
    r.add_get("/api/bookings/history", bookings.history)
    r.add_delete("/api/bookings/{id}/cancel", bookings.cancel)
    r.add_post("/api/bookings/{id}/hold", holds.hold)
    r.add_post("/api/bookings/holds/{hold_id}/confirm", holds.confirm)
    r.add_delete("/api/bookings/holds/{hold_id}", holds.release)
    r.add_get("/api/admin/events/{id}/hold-policy", holdpolicy.get_policy)
    r.add_put("/api/admin/events/{id}/hold-policy", holdpolicy.set_policy)

    r.add_get("/api/admin/analytics", admin.analytics)
    r.add_get("/api/admin/queue/stats", admin.queue_stats)
    r.add_get("/api/admin/queue/details", admin.queue_details)
    r.add_post("/api/admin/queue/pause", admin.queue_pause)
    r.add_post("/api/admin/queue/resume", admin.queue_resume)
    r.add_post("/api/admin/queue/clean", admin.queue_clean)

    r.add_get("/api/admin/reconcile", admin.reconcile_report)
    r.add_post("/api/admin/reconcile", admin.reconcile_repair)

    r.add_get("/healthz", health.healthz)
    r.add_get("/readyz", health.readyz)
    r.add_get("/metrics", metrics_view)
    r.add_get("/api/openapi.json", openapi_view)
    app.on_startup.append(build_on_startup)
    setup_docs(app)  # Swagger UI from the swagger-ui-py package's files (works offline)
    r.add_get("/", landing)
    r.add_get("/readme", readme)
    setup_console(app)
