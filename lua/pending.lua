-- pending.lua: one user's booking records that Redis holds and Postgres does not yet (their
-- latest versions), so history can read its own writes while the persister is behind,
-- paused, or Postgres is down. Read-only.
-- KEYS: pairs, one per shard read: pending {p}:{sN}:pending (zset: booking id -> user id),
--       bookings {p}:{sN}:bookings (one pair on a cluster, where a call stays in one slot;
--       every shard's pair on one server, so one call reads them all)
-- ARGV[1] user id
-- Replies: a list of record JSON (maybe empty)
local found = {}
for k = 1, #KEYS, 2 do
  local ids = redis.call("ZRANGEBYSCORE", KEYS[k], ARGV[1], ARGV[1])
  if #ids > 0 then
    for _, raw in ipairs(redis.call("HMGET", KEYS[k + 1], unpack(ids))) do
      if raw and string.byte(raw, 1) == 123 then found[#found + 1] = raw end
    end
  end
end
return found
