-- Small facts the whole deployment shares, such as the Redis inventory epoch: Redis holds the
-- same value while its data is whole; a Redis that comes back without it lost its data.
CREATE TABLE system_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
