-- confirm.lua: turn a live hold into a confirmed booking (held -> sold) and append the new
-- version to the outbox, in one atomic step, if the hold has not lapsed by Redis time. It
-- races the expirer's release.lua safely: whichever runs first wins, the other changes nothing.
-- A second confirm of the same hold replays the confirmed record.
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] bookings {p}:{sN}:bookings
-- KEYS[3] outbox    {p}:{sN}:outbox       KEYS[4] stats    {p}:{sN}:stats
-- KEYS[5] holds     {p}:{sN}:holds        zset: hold (booking) id -> expiry, ms
-- KEYS[6] pending   {p}:{sN}:pending      zset: booking id -> user id, not yet acked
-- KEYS[7] changed   {p}:{sN}:changed      zset: user id // 64 -> Redis ms of their last record change
-- ARGV[1] booking id   ARGV[2] event id   ARGV[3] acting user id   ARGV[4] hold id (jobId form)
-- ARGV[5] the record as the caller read it from Postgres, used only against a tombstone of
--         the same version (see cancel.lua)
-- ARGV[6] fence: the lowest "seq" this Redis may hold (see book.lua)
-- Replies: {"ok", record, replayed 0|1} | {"err", CODE, detail}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local booking_id = tonumber(ARGV[1])
local event_id = tonumber(ARGV[2])
local actor = tonumber(ARGV[3])
local floor = tonumber(ARGV[6])
if not (booking_id and event_id and actor and floor) then return {"err", "INVALID_INPUT", 0} end

local fence = redis.call("HMGET", KEYS[4], "seq", "frozen")
if fence[2] or tonumber(fence[1] or "0") < floor then
  return {"err", "INVENTORY_NOT_READY", tonumber(fence[1] or "0")}
end

local raw = redis.call("HGET", KEYS[2], ARGV[1])
if not raw then return {"err", "HOLD_NOT_FOUND", 0} end
if string.byte(raw, 1) ~= 123 then  -- a tombstone
  local copy = ARGV[5] ~= "" and cjson.decode(ARGV[5])
  if not copy or copy.id ~= booking_id or copy.v ~= tonumber(raw) then
    return {"err", "STALE_RECORD", tonumber(raw)}
  end
  raw = ARGV[5]
end
local r = cjson.decode(raw)
if r.e ~= event_id or r.j ~= ARGV[4] or not r.x then return {"err", "HOLD_NOT_FOUND", 0} end
if r.u ~= actor then return {"err", "FORBIDDEN", 0} end
if r.st == "CONFIRMED" then return {"ok", raw, 1} end
if r.st == "EXPIRED" then return {"err", "HOLD_EXPIRED", r.x} end
if r.st == "RELEASED" then return {"err", "ALREADY_RELEASED", 0} end
if r.st ~= "HELD" then return {"err", "NOT_HELD", 0} end

local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ms >= r.x then return {"err", "HOLD_EXPIRED", r.x} end
local open = redis.call("HGET", KEYS[1], "open")
if not open then return {"err", "EVENT_NOT_LOADED", 0} end
if open ~= "1" then return {"err", "EVENT_CLOSED", 0} end

redis.call("HINCRBY", KEYS[1], "held", -r.s)
redis.call("HINCRBY", KEYS[1], "sold", r.s)
redis.call("ZREM", KEYS[5], ARGV[1])
local record = string.format(
  '{"id":%s,"e":%d,"u":%d,"s":%d,"st":"CONFIRMED","v":%d,"j":"%s","t":%d,"ut":%d,"x":%d}',
  ARGV[1], r.e, r.u, r.s, r.v + 1, r.j, r.t, ms, r.x)
redis.call("HSET", KEYS[2], ARGV[1], record)
redis.call("RPUSH", KEYS[3], record)
redis.call("ZADD", KEYS[6], r.u, ARGV[1])
redis.call("ZADD", KEYS[7], string.format("%d", ms),
  string.format("%d", math.floor(r.u / MARK_USERS)))
redis.call("HINCRBY", KEYS[4], "bookings", 1)
redis.call("HINCRBY", KEYS[4], "held", -r.s)
return {"ok", record, 0}
