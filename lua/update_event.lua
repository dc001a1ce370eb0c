-- update_event.lua: change capacity (by the difference), limit and display fields of a loaded
-- event. Refused, changing nothing, when the new capacity is below what is sold or held.
-- KEYS[1] inventory {p}:{sN}:ev:<event>
-- ARGV[1] capacity  ARGV[2] max per user  ARGV[3] name  ARGV[4] venue  ARGV[5] time
-- Replies: {"ok", available} | {"err", CODE, detail}
local cap = tonumber(ARGV[1])
local mpu = tonumber(ARGV[2])
if not (cap and mpu) or cap < 0 or mpu < 1 then return {"err", "INVALID_INPUT", 0} end
local inv = redis.call("HMGET", KEYS[1], "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end
local taken = tonumber(inv[1]) + tonumber(inv[2])
if cap < taken then return {"err", "CAPACITY_BELOW_SOLD", taken} end
redis.call("HSET", KEYS[1], "cap", cap, "avail", cap - taken, "mpu", mpu,
  "name", ARGV[3], "venue", ARGV[4], "time", ARGV[5])
return {"ok", cap - taken}
