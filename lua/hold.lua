-- hold.lua: hold seats for one user on one event until an expiry, and append the HELD record
-- to the outbox, in one atomic step. Held seats move from avail to held, count against the
-- per-user limit like booked ones, and the hold joins the shard's expiries sorted set.
-- KEYS[1] inventory   {p}:{sN}:ev:<event>        hash: cap, avail, sold, held, mpu, open
-- KEYS[2] users       {p}:{sN}:ev:<event>:users  hash: user id -> seats held or confirmed
-- KEYS[3] bookings    {p}:{sN}:bookings          hash: booking id -> record JSON | tombstone
-- KEYS[4] outbox      {p}:{sN}:outbox            list of record JSON
-- KEYS[5] pending     {p}:{sN}:pending           zset: booking id -> user id, not yet acked
-- KEYS[6] idempotency {p}:{sN}:idem:<user>:<key> (untouched when ARGV[6] is "")
-- KEYS[7] stats       {p}:{sN}:stats             hash: "held" seats held in the shard,
--                                                "seq" last booking tick, "frozen" recovering
-- KEYS[8] changed     {p}:{sN}:changed           zset: user id // 64 -> Redis ms of their last record change
-- KEYS[9] holds       {p}:{sN}:holds             zset: hold (booking) id -> expiry, ms
-- ARGV[1] event id   ARGV[2] user id   ARGV[3] seats (integer >= 1)   ARGV[4] shard number
-- ARGV[5] job secret (hex)   ARGV[6] idempotency key or ""   ARGV[7] idempotency TTL, seconds
-- ARGV[8] shard space (booking id = tick * space + shard)
-- ARGV[9] fence: the lowest "seq" this Redis may hold (see book.lua)
-- ARGV[10] hold TTL, ms   ARGV[11] longest hold TTL allowed, ms
-- Replies: {"ok", record, replayed 0|1} | {"err", CODE, detail}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local event_id = tonumber(ARGV[1])
local user_id = tonumber(ARGV[2])
local seats = tonumber(ARGV[3])
local shard = tonumber(ARGV[4])
local secret = ARGV[5]
local idem = ARGV[6]
local idem_ttl = tonumber(ARGV[7])
local space = tonumber(ARGV[8])
local floor = tonumber(ARGV[9])
local ttl = tonumber(ARGV[10])
local max_ttl = tonumber(ARGV[11])

if not (event_id and user_id and seats and shard and idem_ttl and space and floor and max_ttl)
    or seats < 1 or seats ~= math.floor(seats) or not string.match(secret, "^%x+$") then
  return {"err", "INVALID_INPUT", 0}
end
if not ttl or ttl < 1 or ttl > max_ttl or ttl ~= math.floor(ttl) then
  return {"err", "INVALID_TTL", max_ttl}
end

local fence = redis.call("HMGET", KEYS[7], "seq", "frozen", "held")
local seq = tonumber(fence[1] or "0")
if fence[2] or seq < floor then return {"err", "INVENTORY_NOT_READY", seq} end

if idem ~= "" then
  local prior = redis.call("GET", KEYS[6])
  if prior then return {"ok", prior, 1} end
end

local inv = redis.call("HMGET", KEYS[1], "avail", "mpu", "open", "held")
if not inv[1] then return {"err", "EVENT_NOT_LOADED", 0} end
if inv[3] ~= "1" then return {"err", "EVENT_CLOSED", 0} end
local avail = tonumber(inv[1])
local mine = tonumber(redis.call("HGET", KEYS[2], ARGV[2]) or "0")
if mine + seats > tonumber(inv[2]) then return {"err", "LIMIT_EXCEEDED", mine} end
if seats > avail then return {"err", "SOLD_OUT", avail} end

local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local tick = math.max(seq + 1, (ms - 1767225600000) * 8)
local id = string.format("%d", tick * space + shard)
local expires = ms + ttl
-- Counters set from what was read above, in this same atomic step (see book.lua).
redis.call("HSET", KEYS[7], "seq", string.format("%d", tick),
  "held", tonumber(fence[3] or "0") + seats)
redis.call("HSET", KEYS[1], "avail", avail - seats, "held", tonumber(inv[4] or "0") + seats)
redis.call("HINCRBY", KEYS[2], ARGV[2], seats)

local record = string.format(
  '{"id":%s,"e":%d,"u":%d,"s":%d,"st":"HELD","v":1,"j":"%s-%s","t":%d,"ut":%d,"x":%d}',
  id, event_id, user_id, seats, id, secret, ms, ms, expires)
redis.call("HSET", KEYS[3], id, record)
redis.call("RPUSH", KEYS[4], record)
redis.call("ZADD", KEYS[5], user_id, id)
redis.call("ZADD", KEYS[8], string.format("%d", ms),
  string.format("%d", math.floor(user_id / MARK_USERS)))
redis.call("ZADD", KEYS[9], expires, id)
if idem ~= "" then redis.call("SET", KEYS[6], record, "EX", idem_ttl) end
return {"ok", record, 0}
