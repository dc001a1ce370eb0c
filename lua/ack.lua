-- ack.lua: the persister committed its in-flight batch to Postgres; drop it and count it.
-- Dead letters found in the batch are appended to the dead list in the same step. A record
-- that reached Postgres and is still the live version in the bookings hash leaves the
-- shard's pending index (history reads Postgres for it now), and, unless it is a live hold,
-- is evicted: replaced by a tombstone, its version number. Redis keeps only what selling
-- needs, and the tombstone is how a script knows which version a caller's copy read from
-- Postgres must be (cancel.lua): without it a stale copy could be acted on twice.
-- The persister has already decoded the batch, so it names the records by position, id and
-- version: no JSON is parsed here. Decoding 1,000 records in Lua held Redis for ~5 ms per
-- ack, a stall every booking behind it waited out.
-- KEYS[1] inflight  KEYS[2] stats  KEYS[3] lease  KEYS[4] dead  KEYS[5] bookings
-- KEYS[6] pending (zset: booking id -> user id)
-- KEYS[7] changed (zset: user id // 64 -> Redis ms of the last change to one of their records, set
--         by every script that changes one): a record leaving pending for Postgres is such a
--         change, since a page of history an API process keeps may lack it (api/
--         history_cache.py). The persister's housekeeping trims old marks (trim_changed.lua).
-- ARGV[1] lease token  ARGV[2] records flushed  ARGV[3] K, the number of triples that follow
-- ARGV[4 .. 3+3K] triples: a record's 1-based position in the in-flight list, its booking id,
--                 and the tombstone to leave (its version) or "0" to keep it (a live hold)
-- ARGV[4+3K ..] dead-letter entries (JSON)
-- Replies: {"ok", flushed total} | {"err", "LEASE_LOST"}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
if redis.call("GET", KEYS[3]) ~= ARGV[1] then return {"err", "LEASE_LOST"} end
local count = tonumber(ARGV[3]) or 0
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- One HMGET, one ZREM and one HSET per 500, not commands per record: each costs about a µs.
local inflight = count > 0 and redis.call("LRANGE", KEYS[1], 0, -1) or {}
for from = 0, count - 1, 500 do
  local upto = math.min(from + 499, count - 1)
  local ids = {}
  for j = from, upto do ids[#ids + 1] = ARGV[5 + 3 * j] end
  local live = redis.call("HMGET", KEYS[5], unpack(ids))
  local acked, tombstones = {}, {}
  for j = from, upto do
    local raw = inflight[tonumber(ARGV[4 + 3 * j])]
    if raw and live[j - from + 1] == raw then
      acked[#acked + 1] = ARGV[5 + 3 * j]
      if ARGV[6 + 3 * j] ~= "0" then
        tombstones[#tombstones + 1] = ARGV[5 + 3 * j]
        tombstones[#tombstones + 1] = ARGV[6 + 3 * j]
      end
    end
  end
  if #acked > 0 then
    local marks = {}
    for _, user in ipairs(redis.call("ZMSCORE", KEYS[6], unpack(acked))) do
      if user then
        marks[#marks + 1] = string.format("%d", now_ms)
        marks[#marks + 1] = string.format("%d", math.floor(tonumber(user) / MARK_USERS))
      end
    end
    if #marks > 0 then redis.call("ZADD", KEYS[7], unpack(marks)) end
    redis.call("ZREM", KEYS[6], unpack(acked))
  end
  if #tombstones > 0 then redis.call("HSET", KEYS[5], unpack(tombstones)) end
end
redis.call("DEL", KEYS[1])
local first_dead = 4 + 3 * count
for i = first_dead, #ARGV do redis.call("RPUSH", KEYS[4], ARGV[i]) end
if #ARGV >= first_dead then redis.call("HINCRBY", KEYS[2], "dead", #ARGV - first_dead + 1) end
return {"ok", redis.call("HINCRBY", KEYS[2], "flushed", tonumber(ARGV[2]))}
