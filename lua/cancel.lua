-- cancel.lua: cancel one confirmed booking, return its seats to stock and append the new
-- version of the record to the outbox, in one atomic step. A second cancel changes nothing.
-- KEYS[1] inventory   {p}:{sN}:ev:<event>
-- KEYS[2] users       {p}:{sN}:ev:<event>:users
-- KEYS[3] bookings    {p}:{sN}:bookings          hash: booking id -> record JSON | tombstone
-- KEYS[4] outbox      {p}:{sN}:outbox
-- KEYS[5] stats       {p}:{sN}:stats             "bookings", "seq", "frozen" (see book.lua)
-- KEYS[6] pending     {p}:{sN}:pending           zset: booking id -> user id, not yet acked
-- KEYS[7] changed     {p}:{sN}:changed           zset: user id // 64 -> Redis ms of their last record change
-- ARGV[1] booking id   ARGV[2] event id   ARGV[3] acting user id   ARGV[4] "1" if admin
-- ARGV[5] the record as the caller read it from Postgres: used only when the bookings hash
--         holds a tombstone (the record was persisted and evicted, see ack.lua) and only if
--         it is that very version; anything else is STALE_RECORD (read again)
-- ARGV[6] fence: the lowest "seq" this Redis may hold (see book.lua)
-- Replies: {"ok", record} | {"err", CODE, detail}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local booking_id = tonumber(ARGV[1])
local event_id = tonumber(ARGV[2])
local actor = tonumber(ARGV[3])
local floor = tonumber(ARGV[6])
if not (booking_id and event_id and actor and floor) then return {"err", "INVALID_INPUT", 0} end

local fence = redis.call("HMGET", KEYS[5], "seq", "frozen")
if fence[2] or tonumber(fence[1] or "0") < floor then
  return {"err", "INVENTORY_NOT_READY", tonumber(fence[1] or "0")}
end

local raw = redis.call("HGET", KEYS[3], ARGV[1])
if not raw then return {"err", "BOOKING_NOT_FOUND", 0} end
if string.byte(raw, 1) ~= 123 then  -- not "{": a tombstone, the evicted version's number
  local copy = ARGV[5] ~= "" and cjson.decode(ARGV[5])
  if not copy or copy.id ~= booking_id or copy.v ~= tonumber(raw) then
    return {"err", "STALE_RECORD", tonumber(raw)}
  end
  raw = ARGV[5]
end
local r = cjson.decode(raw)
if r.e ~= event_id then return {"err", "BOOKING_NOT_FOUND", 0} end
if ARGV[4] ~= "1" and r.u ~= actor then return {"err", "FORBIDDEN", 0} end
if r.st == "HELD" then return {"err", "HOLD_NOT_CONFIRMED", 0} end  -- release.lua lets go
if r.st ~= "CONFIRMED" then return {"err", "ALREADY_CANCELLED", 0} end
local inv = redis.call("HMGET", KEYS[1], "cap", "avail", "sold", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end

local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- Never more available than the capacity leaves (see release.lua).
local sold = tonumber(inv[3] or "0") - r.s
local avail = math.min(tonumber(inv[2] or "0") + r.s,
  tonumber(inv[1]) - sold - tonumber(inv[4] or "0"))
redis.call("HSET", KEYS[1], "sold", sold, "avail", math.max(avail, 0))
local left = redis.call("HINCRBY", KEYS[2], tostring(r.u), -r.s)
if left <= 0 then redis.call("HDEL", KEYS[2], tostring(r.u)) end

local expiry = r.x and string.format(',"x":%d', r.x) or ""  -- a confirmed hold keeps it
local record = string.format(
  '{"id":%s,"e":%d,"u":%d,"s":%d,"st":"CANCELLED","v":%d,"j":"%s","t":%d,"ut":%d%s}',
  ARGV[1], r.e, r.u, r.s, r.v + 1, r.j, r.t, ms, expiry)
redis.call("HSET", KEYS[3], ARGV[1], record)
redis.call("RPUSH", KEYS[4], record)
redis.call("ZADD", KEYS[6], r.u, ARGV[1])
redis.call("ZADD", KEYS[7], string.format("%d", ms),
  string.format("%d", math.floor(r.u / MARK_USERS)))
redis.call("HINCRBY", KEYS[5], "bookings", -1)
return {"ok", record}
