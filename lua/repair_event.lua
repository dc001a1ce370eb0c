-- repair_event.lua: correct a loaded event's counters by the drift measured against a
-- consistent snapshot. Applied as deltas, so bookings that landed after the snapshot stay
-- counted: sold -= drift; held -= held drift; available = capacity - sold - held (never below 0).
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] users {p}:{sN}:ev:<event>:users
-- ARGV[1] sold drift (redis - truth)  ARGV[2] capacity (the system of record's)
-- ARGV[3] held drift (redis - truth)
-- ARGV[4..] user id, seat drift, ... (redis - truth, per user)
-- Replies: {"ok", available} | {"err", "EVENT_NOT_LOADED" | "INVALID_INPUT", 0}
local drift = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local held_drift = tonumber(ARGV[3])
if not (drift and cap and held_drift) or cap < 0 or (#ARGV - 3) % 2 ~= 0 then
  return {"err", "INVALID_INPUT", 0}
end
if redis.call("EXISTS", KEYS[1]) == 0 then return {"err", "EVENT_NOT_LOADED", 0} end
local sold = redis.call("HINCRBY", KEYS[1], "sold", 0 - drift)
if sold < 0 then
  redis.call("HSET", KEYS[1], "sold", 0)
  sold = 0
end
local held = redis.call("HINCRBY", KEYS[1], "held", 0 - held_drift)
if held < 0 then
  redis.call("HSET", KEYS[1], "held", 0)
  held = 0
end
local avail = math.max(0, cap - sold - held)
redis.call("HSET", KEYS[1], "cap", cap, "avail", avail)
for i = 4, #ARGV, 2 do
  local left = redis.call("HINCRBY", KEYS[2], ARGV[i], 0 - tonumber(ARGV[i + 1]))
  if left <= 0 then redis.call("HDEL", KEYS[2], ARGV[i]) end
end
return {"ok", avail}
