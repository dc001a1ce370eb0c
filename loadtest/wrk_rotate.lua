-- wrk script for the bench: rotate pre-made tokens and request paths, one server per thread.
-- Read from the environment (wrk passes no arguments to setup()):
--   BENCH_METHOD  GET or POST
--   BENCH_PATHS   file, one request path a line, or "METHOD path" (a mix of routes)
--   BENCH_TOKENS  file, one bearer token a line (optional: no Authorization header)
--   BENCH_ADDRS   "host:port,host:port": thread i loads address i mod n
-- Prints one line 'BENCH_JSON {...}': counts, and latency percentiles in microseconds.
-- There is no response() callback on purpose: it slows wrk; non-2xx answers are counted by
-- wrk itself (summary.errors.status).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local common = require("wrk_common")

function setup(thread)
  common.place(thread)
end

local prepared = {}
local cursor = 0

function init(args)
  local method = os.getenv("BENCH_METHOD") or "GET"
  local paths = common.lines(os.getenv("BENCH_PATHS"))
  local tokens = common.lines(os.getenv("BENCH_TOKENS"))
  local offset = (thread_index or 0) * 7919
  for i = 0, math.max(#paths, #tokens) - 1 do
    local headers = {}
    if #tokens > 0 then
      headers["Authorization"] = "Bearer " .. tokens[((i + offset) % #tokens) + 1]
    end
    local line = paths[(i % #paths) + 1]
    local verb, path = string.match(line, "^(%u+) (.+)$")
    verb, path = verb or method, path or line
    local body = nil
    if verb ~= "GET" then body = "" end
    prepared[i + 1] = wrk.format(verb, path, headers, body)
  end
end

function request()
  cursor = cursor % #prepared + 1
  return prepared[cursor]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"non2xx":%.0f,"connect":%.0f,'
      .. '"read":%.0f,"write":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f,"p999_us":%.0f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
