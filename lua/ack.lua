-- ack.lua: the persister committed its in-flight batch to Postgres; drop it and count it.
-- Dead letters found in the batch are appended to the dead list in the same step. A record
-- that reached Postgres and is still the live version in the bookings hash (and not a live
-- hold) is evicted from it: Redis keeps only what selling needs; status, cancel and confirm
-- read an evicted record from Postgres and hand it to their script.
-- KEYS[1] inflight  KEYS[2] stats  KEYS[3] lease  KEYS[4] dead  KEYS[5] bookings
-- ARGV[1] lease token  ARGV[2] records flushed  ARGV[3] "1" to evict persisted records
-- ARGV[4..] dead-letter entries (JSON)
-- Replies: {"ok", flushed total} | {"err", "LEASE_LOST"}
if redis.call("GET", KEYS[3]) ~= ARGV[1] then return {"err", "LEASE_LOST"} end
for _, raw in ipairs(ARGV[3] == "1" and redis.call("LRANGE", KEYS[1], 0, -1) or {}) do
  local ok, r = pcall(cjson.decode, raw)
  if ok and type(r) == "table" and r.id and r.st ~= "HELD" then
    local id = string.format("%d", r.id)
    if redis.call("HGET", KEYS[5], id) == raw then redis.call("HDEL", KEYS[5], id) end
  end
end
redis.call("DEL", KEYS[1])
for i = 4, #ARGV do redis.call("RPUSH", KEYS[4], ARGV[i]) end
if #ARGV >= 4 then redis.call("HINCRBY", KEYS[2], "dead", #ARGV - 3) end
return {"ok", redis.call("HINCRBY", KEYS[2], "flushed", tonumber(ARGV[2]))}
