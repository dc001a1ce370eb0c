-- lease.lua: take, renew or release a shard lease held by a token.
-- KEYS[1] lease
-- ARGV[1] token  ARGV[2] TTL ms  ARGV[3] "take" | "renew" | "release"
-- Replies: 1 if the caller holds (or released) the lease, 0 otherwise
local holder = redis.call("GET", KEYS[1])
local op = ARGV[3]
if op == "take" then
  if holder == false or holder == ARGV[1] then
    redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
    return 1
  end
  return 0
end
if holder ~= ARGV[1] then return 0 end
if op == "renew" then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
else
  redis.call("DEL", KEYS[1])
end
return 1
