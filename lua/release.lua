-- release.lua: give a live hold's seats back to stock (held -> avail, the user's count down),
-- drop it from the expiries and append the new version to the outbox, in one atomic step.
-- Only a HELD record changes, so each hold is released or expired at most once. Two modes:
--   RELEASED  the owner (or an admin) lets go early; refused once the hold has lapsed.
--   EXPIRED   the expirer; changes nothing unless the hold is still HELD and lapsed by Redis
--             time, so a confirm that won the race, or a second expirer, is left alone.
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] users {p}:{sN}:ev:<event>:users
-- KEYS[3] bookings  {p}:{sN}:bookings     KEYS[4] outbox {p}:{sN}:outbox
-- KEYS[5] stats     {p}:{sN}:stats        KEYS[6] holds  {p}:{sN}:holds (zset: id -> expiry)
-- KEYS[7] pending   {p}:{sN}:pending      zset: booking id -> user id, not yet acked
-- KEYS[8] changed   {p}:{sN}:changed      zset: user id // 64 -> Redis ms of their last record change
-- ARGV[1] booking id   ARGV[2] event id   ARGV[3] mode "RELEASED" | "EXPIRED"
-- ARGV[4] acting user id (0 for the expirer)   ARGV[5] "1" if admin
-- ARGV[6] hold id (jobId form; "" for the expirer)
-- ARGV[7] the record as the caller read it from Postgres, used only against a tombstone of
--         the same version (see cancel.lua); "" for the expirer
-- ARGV[8] fence: the lowest "seq" this Redis may hold (see book.lua)
-- Replies: {"ok", record} | {"ok", ""} (EXPIRED mode: nothing due) | {"err", CODE, detail}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local booking_id = tonumber(ARGV[1])
local event_id = tonumber(ARGV[2])
local mode = ARGV[3]
local actor = tonumber(ARGV[4])
local floor = tonumber(ARGV[8])
if not (booking_id and event_id and actor and floor)
    or (mode ~= "RELEASED" and mode ~= "EXPIRED") then
  return {"err", "INVALID_INPUT", 0}
end

local fence = redis.call("HMGET", KEYS[5], "seq", "frozen")
if fence[2] or tonumber(fence[1] or "0") < floor then
  return {"err", "INVENTORY_NOT_READY", tonumber(fence[1] or "0")}
end

local raw = redis.call("HGET", KEYS[3], ARGV[1])
if raw and string.byte(raw, 1) ~= 123 then  -- a tombstone: persisted, so not a live hold
  if mode == "EXPIRED" then
    redis.call("ZREM", KEYS[6], ARGV[1])
    return {"ok", ""}
  end
  local copy = ARGV[7] ~= "" and cjson.decode(ARGV[7])
  if not copy or copy.id ~= booking_id or copy.v ~= tonumber(raw) then
    return {"err", "STALE_RECORD", tonumber(raw)}
  end
  raw = ARGV[7]
end
local r = raw and cjson.decode(raw)
local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if mode == "EXPIRED" then
  if not r or r.e ~= event_id or r.st ~= "HELD" then
    redis.call("ZREM", KEYS[6], ARGV[1])  -- confirmed, released or gone: not due any more
    return {"ok", ""}
  end
  if ms < r.x then return {"ok", ""} end
else
  if not r or r.e ~= event_id or r.j ~= ARGV[6] or not r.x then
    return {"err", "HOLD_NOT_FOUND", 0}
  end
  if ARGV[5] ~= "1" and r.u ~= actor then return {"err", "FORBIDDEN", 0} end
  if r.st == "RELEASED" then return {"err", "ALREADY_RELEASED", 0} end
  if r.st == "EXPIRED" or (r.st == "HELD" and ms >= r.x) then
    return {"err", "HOLD_EXPIRED", r.x}
  end
  if r.st ~= "HELD" then return {"err", "NOT_HELD", 0} end
end
local inv = redis.call("HMGET", KEYS[1], "cap", "avail", "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end

-- Never more available than the capacity leaves: after a recovery that found more taken than
-- the capacity (an expiry or cancel a rolled-back Redis lost, then resold), freed seats fill
-- that gap first instead of being sold twice.
local held = tonumber(inv[4] or "0") - r.s
local avail = math.min(tonumber(inv[2] or "0") + r.s,
  tonumber(inv[1]) - tonumber(inv[3] or "0") - held)
redis.call("HSET", KEYS[1], "held", held, "avail", math.max(avail, 0))
local left = redis.call("HINCRBY", KEYS[2], tostring(r.u), -r.s)
if left <= 0 then redis.call("HDEL", KEYS[2], tostring(r.u)) end
redis.call("ZREM", KEYS[6], ARGV[1])
local record = string.format(
  '{"id":%s,"e":%d,"u":%d,"s":%d,"st":"%s","v":%d,"j":"%s","t":%d,"ut":%d,"x":%d}',
  ARGV[1], r.e, r.u, r.s, mode, r.v + 1, r.j, r.t, ms, r.x)
redis.call("HSET", KEYS[3], ARGV[1], record)
redis.call("RPUSH", KEYS[4], record)
redis.call("ZADD", KEYS[7], r.u, ARGV[1])
redis.call("ZADD", KEYS[8], string.format("%d", ms),
  string.format("%d", math.floor(r.u / MARK_USERS)))
redis.call("HINCRBY", KEYS[5], "held", -r.s)
return {"ok", record}
