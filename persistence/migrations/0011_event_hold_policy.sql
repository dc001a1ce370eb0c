-- Issue 16: an admin may shorten the longest hold of one event (a hot sale), below the
-- service-wide BOXOFFICE_HOLD_TTL_MAX_SECONDS. No row: the service-wide bound applies.
CREATE TABLE event_hold_policies (
    event_id         BIGINT PRIMARY KEY REFERENCES events (id),
    max_hold_seconds INTEGER NOT NULL CHECK (max_hold_seconds > 0),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
