-- update_event.lua: change capacity (by the difference), limit and display fields of a loaded
-- event. Refused, changing nothing, when the new capacity is below what is sold or held, or
-- when the shard's Redis is behind or recovering (the counters may be older than the truth).
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] stats {p}:{sN}:stats ("seq", "frozen")
-- ARGV[1] capacity  ARGV[2] max per user  ARGV[3] name  ARGV[4] venue  ARGV[5] time
-- ARGV[6] fence: the lowest "seq" this Redis may hold (see book.lua)
-- Replies: {"ok", available} | {"err", CODE, detail}
local cap = tonumber(ARGV[1])
local mpu = tonumber(ARGV[2])
local floor = tonumber(ARGV[6])
if not (cap and mpu and floor) or cap < 0 or mpu < 1 then return {"err", "INVALID_INPUT", 0} end
local fence = redis.call("HMGET", KEYS[2], "seq", "frozen")
if fence[2] or tonumber(fence[1] or "0") < floor then
  return {"err", "INVENTORY_NOT_READY", tonumber(fence[1] or "0")}
end
local inv = redis.call("HMGET", KEYS[1], "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end
local taken = tonumber(inv[1]) + tonumber(inv[2])
if cap < taken then return {"err", "CAPACITY_BELOW_SOLD", taken} end
redis.call("HSET", KEYS[1], "cap", cap, "avail", cap - taken, "mpu", mpu,
  "name", ARGV[3], "venue", ARGV[4], "time", ARGV[5])
return {"ok", cap - taken}
