-- status.lua: a booking's record (or tombstone) and whether its latest version is still on
-- its way to Postgres, in one call (the status route's only Redis read).
-- KEYS[1] bookings {p}:{sN}:bookings   KEYS[2] pending {p}:{sN}:pending
-- ARGV[1] booking id
-- Replies: {} when Redis holds nothing of it | {record JSON or tombstone, 1 if pending else 0}
local raw = redis.call("HGET", KEYS[1], ARGV[1])
if not raw then return {} end
if redis.call("ZSCORE", KEYS[2], ARGV[1]) then return {raw, 1} end
return {raw, 0}
