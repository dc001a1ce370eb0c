-- close_event.lua: stop selling an event. Refused while seats are sold or held unless forced
-- (the caller then cancels each live booking through cancel.lua), and while the shard's
-- Redis is behind or recovering.
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] stats {p}:{sN}:stats ("seq", "frozen")
-- ARGV[1] "1" to close even with live bookings
-- ARGV[2] fence: the lowest "seq" this Redis may hold (see book.lua)
-- Replies: {"ok", sold} | {"err", CODE, detail}
local floor = tonumber(ARGV[2])
if not floor then return {"err", "INVALID_INPUT", 0} end
local fence = redis.call("HMGET", KEYS[2], "seq", "frozen")
if fence[2] or tonumber(fence[1] or "0") < floor then
  return {"err", "INVENTORY_NOT_READY", tonumber(fence[1] or "0")}
end
local inv = redis.call("HMGET", KEYS[1], "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end
local taken = tonumber(inv[1]) + tonumber(inv[2])
if taken > 0 and ARGV[1] ~= "1" then return {"err", "HAS_BOOKINGS", taken} end
redis.call("HSET", KEYS[1], "open", "0")
return {"ok", taken}
