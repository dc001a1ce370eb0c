-- close_event.lua: stop selling an event. Refused while seats are sold or held unless forced
-- (the caller then cancels each live booking through cancel.lua).
-- KEYS[1] inventory {p}:{sN}:ev:<event>
-- ARGV[1] "1" to close even with live bookings
-- Replies: {"ok", sold} | {"err", CODE, detail}
local inv = redis.call("HMGET", KEYS[1], "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end
local taken = tonumber(inv[1]) + tonumber(inv[2])
if taken > 0 and ARGV[1] ~= "1" then return {"err", "HAS_BOOKINGS", taken} end
redis.call("HSET", KEYS[1], "open", "0")
return {"ok", taken}
