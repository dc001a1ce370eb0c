-- raise_seq.lua: make sure a shard's booking tick is at least N (after Redis lost data or
-- came back older, new booking ids must not reuse ids Postgres or a journal already holds,
-- and the fence of every caller that saw them must pass again). Never lowers it.
-- KEYS[1] stats {p}:{sN}:stats   (field "seq": the last booking tick, see book.lua)
-- ARGV[1] N
-- Replies: the tick now
local n = tonumber(ARGV[1])
local current = tonumber(redis.call("HGET", KEYS[1], "seq") or "0")
if n and n > current then
  redis.call("HSET", KEYS[1], "seq", string.format("%d", n))
  return n
end
return current
