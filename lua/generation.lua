-- generation.lua: the event-list generation (bumped by every change to an event), read on
-- the engine's pipelined connection rather than a round trip of its own.
-- KEYS[1] {p}:cache:events:gen
-- Replies: the generation (0 when never bumped)
return tonumber(redis.call("GET", KEYS[1]) or "0")
