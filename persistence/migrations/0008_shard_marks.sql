-- The highest booking id persisted per outbox shard (id % 1024), kept by the write-behind in
-- the same transaction as the rows. A Redis whose shard tick ("seq") is below the tick of
-- this id has come back older than what Postgres already holds: every API process reads
-- these marks as its fence floors, so none sells on such a Redis, even one that never saw
-- the Redis before it went back in time. Seeded from the bookings already there.
CREATE TABLE shard_marks (
    shard INTEGER PRIMARY KEY CHECK (shard >= 0 AND shard < 1024),
    top_id BIGINT NOT NULL
);
INSERT INTO shard_marks (shard, top_id)
SELECT (id % 1024)::INTEGER, max(id) FROM bookings GROUP BY 1;
