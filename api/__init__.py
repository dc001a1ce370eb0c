"""The aiohttp front: routes, auth, schemas, one error model, middleware."""
