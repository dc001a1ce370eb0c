-- wrk script for the bench's open model (the wrk2 idea, done in a script): requests fall due
-- at a fixed rate whether or not the server keeps up, and latency counts from when a request
-- was DUE, not from when a free connection sent it, so queueing is not hidden (no
-- coordinated omission). LuaJIT's FFI reads the monotonic clock.
--   BENCH_RATE    requests/s over all threads
--   BENCH_OK      status counted as ok (e.g. 202)
--   BENCH_PATHS, BENCH_TOKENS, BENCH_ADDRS, BENCH_METHOD: as for wrk_rotate.lua
-- Each request carries X-Request-Id: <its slot>; the server echoes it, which ties an answer
-- to its due time. Slots due within the same millisecond may swap (wrk's timers tick in ms).
-- Prints 'BENCH_JSON {...}': counts, latency percentiles in microseconds, late slots.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("wrk_common")
local threads = {}

function setup(thread)
  common.place(thread)
  threads[#threads + 1] = thread
end

local method, paths, tokens, ok_status
local interval_us, started, slots = 0, nil, 0
local pending, head, tail = {}, 1, 0 -- due times of reserved slots, in order
local due_of = {}
lat, late, answered, good = {}, 0, 0, 0

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  paths = common.lines(os.getenv("BENCH_PATHS"))
  tokens = common.lines(os.getenv("BENCH_TOKENS"))
  ok_status = tonumber(os.getenv("BENCH_OK") or "200")
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  interval_us = 1000000 * count / tonumber(os.getenv("BENCH_RATE"))
end

function delay()
  local now = now_us()
  if started == nil then started = now end
  local due = started + slots * interval_us
  slots = slots + 1
  tail = tail + 1
  pending[tail] = due
  local wait_ms = (due - now) / 1000
  if wait_ms < 0 then
    if wait_ms < -1 then late = late + 1 end
    return 0
  end
  return math.ceil(wait_ms) -- never before its time: up to 1 ms late instead
end

function request()
  local due = pending[head]
  pending[head] = nil
  head = head + 1
  local slot = head - 1 + (thread_index or 0) * 1000000000
  due_of[slot] = due
  local i = head - 2
  local headers = { ["X-Request-Id"] = tostring(slot) }
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(i + (thread_index or 0) * 7919) % #tokens + 1]
  end
  local body = nil
  if method ~= "GET" then body = "" end
  return wrk.format(method, paths[i % #paths + 1], headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if status == ok_status then good = good + 1 end
  local slot = tonumber(headers["X-Request-Id"] or headers["x-request-id"] or "")
  local due = slot and due_of[slot]
  if due then
    due_of[slot] = nil
    lat[#lat + 1] = now_us() - due
  end
end

function done(summary, latency, requests)
  local all, late_total, answered_total, good_total = {}, 0, 0, 0
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("lat")) do all[#all + 1] = v end
    late_total = late_total + thread:get("late")
    answered_total = answered_total + thread:get("answered")
    good_total = good_total + thread:get("good")
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return -1 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"answered":%.0f,"ok":%.0f,"timed":%.0f,"duration_us":%.0f,'
      .. '"late":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"timeout":%.0f,'
      .. '"p50_us":%.0f,"p99_us":%.0f,"p999_us":%.0f}\n',
    summary.requests, answered_total, good_total, #all, summary.duration, late_total,
    e.connect, e.read, e.write, e.timeout, pct(50), pct(99), pct(99.9)))
end
