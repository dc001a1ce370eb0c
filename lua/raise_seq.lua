-- raise_seq.lua: make sure a shard's booking sequence is at least N (after Redis lost its
-- data, new booking ids must not reuse ids Postgres already holds). Never lowers it.
-- KEYS[1] sequence {p}:{sN}:seq
-- ARGV[1] N
-- Replies: the sequence value now
local n = tonumber(ARGV[1])
local current = tonumber(redis.call("GET", KEYS[1]) or "0")
if n and n > current then
  redis.call("SET", KEYS[1], n)
  return n
end
return current
