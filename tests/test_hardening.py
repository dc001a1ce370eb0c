"""Issue 16: what every answer says about the server, and what answers with secrets say
about caching."""

from __future__ import annotations

from tests.support import auth


async def test_no_answer_names_python_or_aiohttp(client):
    for response in [
        await client.get("/healthz"),
        await client.get("/api/nope"),
        await client.get("/api/docs"),
        await client.post("/api/auth/login", data=b"{"),
    ]:
        server = response.headers.get("Server", "")
        assert "python" not in server.lower() and "aiohttp" not in server.lower(), server


async def test_every_answer_says_nosniff(client):
    for response in [
        await client.get("/healthz"),
        await client.get("/api/events/view"),
        await client.get("/api/nope"),
        await client.post("/api/auth/login", data=b"{"),
    ]:
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


async def test_answers_carrying_a_token_or_a_user_are_never_stored(client):
    body = {"name": "C", "email": "cache@example.com", "password": "Password123!"}
    registered = await client.post("/api/auth/register", json=body)
    token = (await registered.json())["token"]
    logged_in = await client.post(
        "/api/auth/login", json={"email": body["email"], "password": body["password"]}
    )
    me = await client.get("/api/auth/me", headers=auth(token))
    for response in (registered, logged_in, me):
        assert response.status == 200
        assert "no-store" in response.headers.get("Cache-Control", "")
