-- The original's tables (users, events, bookings) with our additions (DESIGN §2b).
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    venue        TEXT NOT NULL,
    time         TIMESTAMPTZ NOT NULL,
    capacity     INTEGER NOT NULL CHECK (capacity >= 0),
    impressions  BIGINT NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    max_per_user INTEGER NOT NULL DEFAULT 1 CHECK (max_per_user >= 1),
    status       TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'DELETED')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Booking ids come from the engine (per-shard sequence folded with the shard number).
CREATE TABLE bookings (
    id           BIGINT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    event_id     BIGINT NOT NULL REFERENCES events (id),
    seats        INTEGER NOT NULL CHECK (seats > 0),
    status       TEXT NOT NULL CHECK (status IN ('CONFIRMED', 'CANCELLED')),
    version      INTEGER NOT NULL CHECK (version >= 1),
    job_id       TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    persisted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX bookings_user_id_idx ON bookings (user_id, id DESC);
CREATE INDEX bookings_event_id_idx ON bookings (event_id) WHERE status = 'CONFIRMED';
