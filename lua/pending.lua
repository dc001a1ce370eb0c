-- pending.lua: one user's booking records that Redis holds and Postgres does not yet (their
-- latest versions), so history can read its own writes while the persister is behind,
-- paused, or Postgres is down. Read-only.
-- KEYS[1] pending {p}:{sN}:pending (zset: booking id -> user id)   KEYS[2] bookings
-- ARGV[1] user id
-- Replies: a list of record JSON (maybe empty)
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], ARGV[1], ARGV[1])
if #ids == 0 then return {} end
local found = {}
for _, raw in ipairs(redis.call("HMGET", KEYS[2], unpack(ids))) do
  if raw and string.byte(raw, 1) == 123 then found[#found + 1] = raw end
end
return found
