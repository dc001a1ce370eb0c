-- changes.lua: when one user's booking records last changed, for the pages of history an API
-- process keeps (api/history_cache.py): a page read before that change is stale. Read-only.
-- KEYS: the `changed` zsets (user id // 64 -> Redis ms of the last change to one of their records,
--       set by every script that changes one, lua/ack.lua included) of the shards read: one
--       on a cluster, where a call stays in one slot, every shard's on one server; then, when
--       ARGV[2] is "1", the event-list generation {p}:cache:events:gen (one server only)
-- ARGV[1] user id   ARGV[2] "1" when the last KEY is the generation
-- Replies: {Redis ms now, ms of the user's last change here (-1: none within the marks'
--           keep), the generation (-1 when not asked)}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local now = redis.call("TIME")
local last, generation, shards = -1, -1, #KEYS
if ARGV[2] == "1" then
  generation = tonumber(redis.call("GET", KEYS[shards]) or "0")
  shards = shards - 1
end
local mark = string.format("%d", math.floor(tonumber(ARGV[1]) / MARK_USERS))
for k = 1, shards do
  local at = tonumber(redis.call("ZSCORE", KEYS[k], mark))
  if at and at > last then last = at end
end
return {
  string.format("%d", tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)),
  string.format("%d", last),
  generation,
}
