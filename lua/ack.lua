-- ack.lua: the persister committed its in-flight batch to Postgres; drop it and count it.
-- Dead letters found in the batch are appended to the dead list in the same step. A record
-- that reached Postgres and is still the live version in the bookings hash (and not a live
-- hold) is evicted from it: Redis keeps only what selling needs; status, cancel and confirm
-- read an evicted record from Postgres and hand it to their script.
-- The persister has already decoded the batch, so it names the records that may leave (not
-- holds) by position and id: no JSON is parsed here. Decoding 1,000 records in Lua held
-- Redis for ~5 ms per ack, a stall every booking behind it waited out.
-- KEYS[1] inflight  KEYS[2] stats  KEYS[3] lease  KEYS[4] dead  KEYS[5] bookings
-- ARGV[1] lease token  ARGV[2] records flushed  ARGV[3] K, the number of pairs that follow
-- ARGV[4 .. 3+2K] pairs: a record's 1-based position in the in-flight list, its booking id
-- ARGV[4+2K ..] dead-letter entries (JSON)
-- Replies: {"ok", flushed total} | {"err", "LEASE_LOST"}
if redis.call("GET", KEYS[3]) ~= ARGV[1] then return {"err", "LEASE_LOST"} end
local pairs_count = tonumber(ARGV[3]) or 0
-- One HMGET and a few HDELs, not a command per record: each redis.call costs about a µs.
local inflight = pairs_count > 0 and redis.call("LRANGE", KEYS[1], 0, -1) or {}
for from = 0, pairs_count - 1, 500 do
  local upto = math.min(from + 499, pairs_count - 1)
  local ids = {}
  for j = from, upto do ids[#ids + 1] = ARGV[5 + 2 * j] end
  local live = redis.call("HMGET", KEYS[5], unpack(ids))
  local gone = {}
  for j = from, upto do
    local raw = inflight[tonumber(ARGV[4 + 2 * j])]
    if raw and live[j - from + 1] == raw then gone[#gone + 1] = ARGV[5 + 2 * j] end
  end
  if #gone > 0 then redis.call("HDEL", KEYS[5], unpack(gone)) end
end
redis.call("DEL", KEYS[1])
local first_dead = 4 + 2 * pairs_count
for i = first_dead, #ARGV do redis.call("RPUSH", KEYS[4], ARGV[i]) end
if #ARGV >= first_dead then redis.call("HINCRBY", KEYS[2], "dead", #ARGV - first_dead + 1) end
return {"ok", redis.call("HINCRBY", KEYS[2], "flushed", tonumber(ARGV[2]))}
