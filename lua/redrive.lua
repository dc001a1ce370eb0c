-- redrive.lua: move every dead letter of a shard back to its outbox (the record only; the
-- reason is dropped). A record that is still poison simply comes back to the dead list.
-- KEYS[1] dead  KEYS[2] outbox  KEYS[3] stats
-- Replies: number of records re-driven
local entries = redis.call("LRANGE", KEYS[1], 0, -1)
local moved = 0
for _, raw in ipairs(entries) do
  local ok, entry = pcall(cjson.decode, raw)
  if ok and type(entry) == "table" and type(entry.record) == "string" then
    redis.call("RPUSH", KEYS[2], entry.record)
    moved = moved + 1
  end
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[3], "dead", 0)
return moved
