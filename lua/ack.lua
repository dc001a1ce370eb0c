-- ack.lua: the persister committed its in-flight batch to Postgres; drop it and count it.
-- Dead letters found in the batch are appended to the dead list in the same step.
-- KEYS[1] inflight  KEYS[2] stats  KEYS[3] lease  KEYS[4] dead
-- ARGV[1] lease token  ARGV[2] records flushed  ARGV[3..] dead-letter entries (JSON)
-- Replies: {"ok", flushed total} | {"err", "LEASE_LOST"}
if redis.call("GET", KEYS[3]) ~= ARGV[1] then return {"err", "LEASE_LOST"} end
redis.call("DEL", KEYS[1])
for i = 3, #ARGV do redis.call("RPUSH", KEYS[4], ARGV[i]) end
if #ARGV >= 3 then redis.call("HINCRBY", KEYS[2], "dead", #ARGV - 2) end
return {"ok", redis.call("HINCRBY", KEYS[2], "flushed", tonumber(ARGV[2]))}
