-- load_event.lua: load one event's inventory and per-user seat counts, atomically; refuses
-- to overwrite live inventory (a rebuild never clobbers an event that is selling).
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] users {p}:{sN}:ev:<event>:users
-- ARGV[1] capacity  ARGV[2] available  ARGV[3] sold  ARGV[4] held  ARGV[5] max per user
-- ARGV[6] open "1"/"0"  ARGV[7] name  ARGV[8] venue  ARGV[9] time (ISO 8601)
-- ARGV[10..] user id, seats, user id, seats, ... (seats held or confirmed per user)
-- Replies: {"ok", available} | {"err", "ALREADY_LOADED" | "INVALID_INPUT", 0}
local cap = tonumber(ARGV[1])
local avail = tonumber(ARGV[2])
local sold = tonumber(ARGV[3])
local held = tonumber(ARGV[4])
local mpu = tonumber(ARGV[5])
if not (cap and avail and sold and held and mpu) or cap < 0 or avail < 0 or sold < 0
    or held < 0 or mpu < 1 or avail > cap or (#ARGV - 9) % 2 ~= 0 then
  return {"err", "INVALID_INPUT", 0}
end
if redis.call("EXISTS", KEYS[1]) == 1 then return {"err", "ALREADY_LOADED", 0} end
redis.call("DEL", KEYS[2])
for i = 10, #ARGV, 2 do redis.call("HSET", KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call("HSET", KEYS[1], "cap", cap, "avail", avail, "sold", sold, "held", held,
  "mpu", mpu, "open", ARGV[6], "name", ARGV[7], "venue", ARGV[8], "time", ARGV[9])
return {"ok", avail}
