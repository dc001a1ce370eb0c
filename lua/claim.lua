-- claim.lua: the persister takes a batch. If the in-flight list still holds an unacked batch
-- (a crash, a lost lease), that batch is returned again first; otherwise up to N records move
-- from the outbox head to the in-flight list. Only the lease holder may claim.
-- KEYS[1] outbox  KEYS[2] inflight  KEYS[3] lease
-- ARGV[1] batch size N   ARGV[2] lease token
-- Replies: {"ok", record...} | {"err", "LEASE_LOST"}
if redis.call("GET", KEYS[3]) ~= ARGV[2] then return {"err", "LEASE_LOST"} end
local pending = redis.call("LRANGE", KEYS[2], 0, -1)
if #pending > 0 then
  table.insert(pending, 1, "ok")
  return pending
end
local n = tonumber(ARGV[1])
local batch = redis.call("LRANGE", KEYS[1], 0, n - 1)
if #batch > 0 then
  redis.call("LTRIM", KEYS[1], #batch, -1)
  for i = 1, #batch, 500 do
    redis.call("RPUSH", KEYS[2], unpack(batch, i, math.min(i + 499, #batch)))
  end
end
table.insert(batch, 1, "ok")
return batch
