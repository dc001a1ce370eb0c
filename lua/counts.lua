-- counts.lua: the live counts of a page's events that live in one shard, in one call (the
-- event list sends one per shard, all in one pipelined round trip).
-- KEYS[1 .. n] inventory {p}:{sN}:ev:<event> of each event   KEYS[n + 1] impressions {p}:{sN}:imp
-- ARGV[1 .. n] the events' ids, in the same order
-- Replies: flat triples, per event: available (-1 when not loaded), held, views not yet in
-- Postgres
local out = {}
local n = #ARGV
for i = 1, n do
  local inv = redis.call("HMGET", KEYS[i], "avail", "held")
  out[#out + 1] = tonumber(inv[1] or "-1")
  out[#out + 1] = tonumber(inv[2] or "0")
  out[#out + 1] = tonumber(redis.call("HGET", KEYS[n + 1], ARGV[i]) or "0")
end
return out
