-- view.lua: one view of one event page: count the impression (once per viewer per window)
-- and read the event's live counts, in one call (the page needs no other Redis read).
-- KEYS[1] inventory   {p}:{sN}:ev:<event>   hash: cap, avail, sold, held, mpu, open, ...
-- KEYS[2] impressions {p}:{sN}:imp          hash: event id -> views not yet in Postgres
-- KEYS[3] seen        {p}:{sN}:seen:<event>:<viewer>   set for a window once counted
-- KEYS[4] (optional, one server only: on a cluster it is another slot's, read apart) the
--         event-list generation {p}:cache:events:gen, which the page's cached row is keyed by
-- ARGV[1] event id   ARGV[2] window, seconds
-- Replies: {generation (-1 without KEYS[4])} when the event is not loaded or closed (nothing
--          counted) | {generation, cap, avail, sold, held, mpu, open, pending views}
local generation = -1
if KEYS[4] then generation = tonumber(redis.call("GET", KEYS[4]) or "0") end
local inv = redis.call("HMGET", KEYS[1], "cap", "avail", "sold", "held", "mpu", "open")
if not inv[1] or inv[6] ~= "1" then return {generation} end
local pending
if redis.call("SET", KEYS[3], "1", "NX", "EX", tonumber(ARGV[2])) then
  pending = redis.call("HINCRBY", KEYS[2], ARGV[1], 1)
else
  pending = tonumber(redis.call("HGET", KEYS[2], ARGV[1]) or "0")
end
return {generation, inv[1], inv[2], inv[3], inv[4], inv[5], inv[6], pending}
