-- confirm.lua: turn a live hold into a confirmed booking (held -> sold) and append the new
-- version to the outbox, in one atomic step, if the hold has not lapsed by Redis time. It
-- races the expirer's release.lua safely: whichever runs first wins, the other changes nothing.
-- A second confirm of the same hold replays the confirmed record.
-- KEYS[1] inventory {p}:{sN}:ev:<event>   KEYS[2] bookings {p}:{sN}:bookings
-- KEYS[3] outbox    {p}:{sN}:outbox       KEYS[4] stats    {p}:{sN}:stats
-- KEYS[5] holds     {p}:{sN}:holds        zset: hold (booking) id -> expiry, ms
-- ARGV[1] booking id   ARGV[2] event id   ARGV[3] acting user id   ARGV[4] hold id (jobId form)
-- ARGV[5] the record as the caller read it, used only when the bookings hash no longer holds
--         it (a persisted final state is evicted, see ack.lua)
-- Replies: {"ok", record, replayed 0|1} | {"err", CODE, detail}
local booking_id = tonumber(ARGV[1])
local event_id = tonumber(ARGV[2])
local actor = tonumber(ARGV[3])
if not (booking_id and event_id and actor) then return {"err", "INVALID_INPUT", 0} end

local raw = redis.call("HGET", KEYS[2], ARGV[1]) or ARGV[5]
if not raw or raw == "" then return {"err", "HOLD_NOT_FOUND", 0} end
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
  '{"id":%d,"e":%d,"u":%d,"s":%d,"st":"CONFIRMED","v":%d,"j":"%s","t":%d,"ut":%d,"x":%d}',
  r.id, r.e, r.u, r.s, r.v + 1, r.j, r.t, ms, r.x)
redis.call("HSET", KEYS[2], ARGV[1], record)
redis.call("RPUSH", KEYS[3], record)
redis.call("HINCRBY", KEYS[4], "bookings", 1)
redis.call("HINCRBY", KEYS[4], "held", -r.s)
return {"ok", record, 0}
