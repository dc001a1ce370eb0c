-- load_event.lua: load one event's inventory; refuses to overwrite live inventory.
-- KEYS[1] inventory {p}:{sN}:ev:<event>
-- ARGV[1] capacity  ARGV[2] available  ARGV[3] sold  ARGV[4] held  ARGV[5] max per user
-- ARGV[6] open "1"/"0"  ARGV[7] name  ARGV[8] venue  ARGV[9] time (ISO 8601)
-- Replies: {"ok", available} | {"err", "ALREADY_LOADED" | "INVALID_INPUT", 0}
local cap = tonumber(ARGV[1])
local avail = tonumber(ARGV[2])
local sold = tonumber(ARGV[3])
local held = tonumber(ARGV[4])
local mpu = tonumber(ARGV[5])
if not (cap and avail and sold and held and mpu) or cap < 0 or avail < 0 or sold < 0
    or held < 0 or mpu < 1 or avail + sold + held ~= cap then
  return {"err", "INVALID_INPUT", 0}
end
if redis.call("EXISTS", KEYS[1]) == 1 then return {"err", "ALREADY_LOADED", 0} end
redis.call("HSET", KEYS[1], "cap", cap, "avail", avail, "sold", sold, "held", held,
  "mpu", mpu, "open", ARGV[6], "name", ARGV[7], "venue", ARGV[8], "time", ARGV[9])
return {"ok", avail}
