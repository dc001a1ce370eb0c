-- cancel.lua: cancel one confirmed booking, return its seats to stock and append the new
-- version of the record to the outbox, in one atomic step. A second cancel changes nothing.
-- KEYS[1] inventory   {p}:{sN}:ev:<event>
-- KEYS[2] users       {p}:{sN}:ev:<event>:users
-- KEYS[3] bookings    {p}:{sN}:bookings
-- KEYS[4] outbox      {p}:{sN}:outbox
-- KEYS[5] stats       {p}:{sN}:stats             hash: "bookings" = live confirmed bookings
-- ARGV[1] booking id   ARGV[2] event id   ARGV[3] acting user id   ARGV[4] "1" if admin
-- ARGV[5] the record as the caller read it (Redis or Postgres): used only when the bookings
--         hash no longer holds it (persisted records are evicted, see ack.lua)
-- Replies: {"ok", record} | {"err", CODE, detail}
local booking_id = tonumber(ARGV[1])
local event_id = tonumber(ARGV[2])
local actor = tonumber(ARGV[3])
if not (booking_id and event_id and actor) then return {"err", "INVALID_INPUT", 0} end

local raw = redis.call("HGET", KEYS[3], ARGV[1]) or ARGV[5]
if not raw or raw == "" then return {"err", "BOOKING_NOT_FOUND", 0} end
local r = cjson.decode(raw)
if r.e ~= event_id then return {"err", "BOOKING_NOT_FOUND", 0} end
if ARGV[4] ~= "1" and r.u ~= actor then return {"err", "FORBIDDEN", 0} end
if r.st == "HELD" then return {"err", "HOLD_NOT_CONFIRMED", 0} end  -- release.lua lets go
if r.st ~= "CONFIRMED" then return {"err", "ALREADY_CANCELLED", 0} end
if redis.call("EXISTS", KEYS[1]) == 0 then return {"err", "EVENT_NOT_LOADED", 0} end

local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("HINCRBY", KEYS[1], "avail", r.s)
redis.call("HINCRBY", KEYS[1], "sold", -r.s)
local left = redis.call("HINCRBY", KEYS[2], tostring(r.u), -r.s)
if left <= 0 then redis.call("HDEL", KEYS[2], tostring(r.u)) end

local expiry = r.x and string.format(',"x":%d', r.x) or ""  -- a confirmed hold keeps it
local record = string.format(
  '{"id":%d,"e":%d,"u":%d,"s":%d,"st":"CANCELLED","v":%d,"j":"%s","t":%d,"ut":%d%s}',
  r.id, r.e, r.u, r.s, r.v + 1, r.j, r.t, ms, expiry)
redis.call("HSET", KEYS[3], ARGV[1], record)
redis.call("RPUSH", KEYS[4], record)
redis.call("HINCRBY", KEYS[5], "bookings", -1)
return {"ok", record}
