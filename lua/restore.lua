-- restore.lua: after Redis lost data or came back older (recovery, while the shard is
-- frozen), bring booking records up to the versions Postgres holds. A record Redis lacks, or
-- holds at an older version, becomes Postgres's version: a live hold as its full record and
-- back in the expiries; anything else as a tombstone (its version), out of the expiries, so a
-- stale hold never comes back to hand its seats out again. A newer version in Redis (one
-- still on its way to Postgres) is kept; the same version of a live hold is put back in the
-- expiries if they lost it. Every restored id leaves the pending index, and its user is
-- marked in `changed`, as by lua/ack.lua (history's kept pages of that user are stale).
-- KEYS[1] bookings {p}:{sN}:bookings   KEYS[2] holds {p}:{sN}:holds   KEYS[3] pending
-- KEYS[4] changed {p}:{sN}:changed
-- ARGV: groups of four: booking id, version, the full record JSON for a live hold or "",
--       the hold's expiry (ms) or 0
-- Replies: {"ok", records changed}
-- A change mark covers MARK_USERS consecutive user ids (engine.booking.CHANGE_MARK_USERS):
-- a 64th of the memory of one per user, for needless misses of history's pages.
local MARK_USERS = 64
local changed = 0
local now = redis.call("TIME")
local now_ms = string.format("%d", tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
for i = 1, #ARGV, 4 do
  local id, version = ARGV[i], tonumber(ARGV[i + 1])
  local cur = redis.call("HGET", KEYS[1], id)
  local cur_version = -1
  if cur then
    if string.byte(cur, 1) == 123 then
      cur_version = tonumber(cjson.decode(cur).v)
    else
      cur_version = tonumber(cur)
    end
  end
  if cur_version < version then
    if ARGV[i + 2] ~= "" then
      redis.call("HSET", KEYS[1], id, ARGV[i + 2])
      redis.call("ZADD", KEYS[2], ARGV[i + 3], id)
    else
      redis.call("HSET", KEYS[1], id, ARGV[i + 1])
      redis.call("ZREM", KEYS[2], id)
    end
    local user = redis.call("ZSCORE", KEYS[3], id)
    if user then
      redis.call("ZADD", KEYS[4], now_ms,
        string.format("%d", math.floor(tonumber(user) / MARK_USERS)))
      redis.call("ZREM", KEYS[3], id)
    end
    changed = changed + 1
  elseif cur_version == version and ARGV[i + 2] ~= "" then
    redis.call("ZADD", KEYS[2], ARGV[i + 3], id)  -- the same live hold: make sure it lapses
  end
end
return {"ok", changed}
