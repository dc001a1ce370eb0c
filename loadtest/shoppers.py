"""What a simulated shopper sends that must pass the server's own rules (kept apart from the
locustfile so tests can check it without locust installed)."""

from __future__ import annotations

import secrets


def shopper_password() -> str:
    """Random, and always strong enough to register: a bare token_urlsafe lacks an upper-case
    letter or a digit about one time in eight, and that shopper never got to shop."""
    return f"Pw1-{secrets.token_urlsafe(12)}"
