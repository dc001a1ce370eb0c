-- trim_changed.lua: drop the change marks (see lua/ack.lua) older than ARGV[1] ms by Redis's
-- clock: the persister's housekeeping, at every lease renewal, is the one place they go.
-- KEYS[1] changed {p}:{sN}:changed
-- Replies: marks dropped
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf",
  "(" .. string.format("%d", now_ms - tonumber(ARGV[1])))
