-- take_impressions.lua: hand the shard's pending view counts to the flusher. The counts move
-- to an in-flight hash tagged with a batch id; an unacked in-flight hash is handed out again
-- first, with the same batch id, so Postgres can refuse to apply one batch twice.
-- KEYS[1] pending {p}:{sN}:imp   KEYS[2] in flight {p}:{sN}:imp:inflight   KEYS[3] lease
-- ARGV[1] lease token  ARGV[2] new batch id
-- Replies: {"ok", batch id, event, delta, event, delta, ...} | {"err", "LEASE_LOST"}
if redis.call("GET", KEYS[3]) ~= ARGV[1] then return {"err", "LEASE_LOST"} end
if redis.call("EXISTS", KEYS[2]) == 0 then
  if redis.call("EXISTS", KEYS[1]) == 0 then return {"ok"} end
  redis.call("RENAME", KEYS[1], KEYS[2])
  redis.call("HSET", KEYS[2], "_batch", ARGV[2])
end
local reply = {"ok", redis.call("HGET", KEYS[2], "_batch")}
local all = redis.call("HGETALL", KEYS[2])
for i = 1, #all, 2 do
  if all[i] ~= "_batch" then
    reply[#reply + 1] = all[i]
    reply[#reply + 1] = all[i + 1]
  end
end
return reply
