-- Each impressions batch is applied once: a replayed batch (crash after commit, before the
-- Redis ack) finds its id here and changes nothing.
CREATE TABLE impression_flushes (
    batch_id   TEXT PRIMARY KEY,
    flushed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
