-- ratelimit.lua: a fixed-window counter for one identity (the booking-per-user limit). It
-- rides the engine's auto-pipeline with the booking scripts of the same loop tick, where the
-- `limits` library's own round trip cost ~40% of booking throughput (measured, see README).
-- KEYS[1] counter {p}:rl:{<scope>:<identity>}
-- ARGV[1] limit (attempts per window)  ARGV[2] window, milliseconds
-- Replies: {allowed 0|1, attempts in this window, milliseconds until the window resets}
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = redis.call("INCR", KEYS[1])
local ttl = redis.call("PTTL", KEYS[1])
if n == 1 or ttl < 0 then
  redis.call("PEXPIRE", KEYS[1], window)
  ttl = window
end
if n <= limit then return {1, n, ttl} end
return {0, n, ttl}
