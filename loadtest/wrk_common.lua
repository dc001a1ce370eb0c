-- What the bench's wrk scripts share (required by wrk_rotate.lua and wrk_open.lua, found
-- beside them): reading a one-item-a-line file, and pointing thread i at BENCH_ADDRS' i-th
-- address (mod n), with its index set as the thread global `thread_index`.
local common = {}

function common.lines(path)
  local out = {}
  if path == nil or path == "" then return out end
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local threads_made = 0

function common.place(thread)
  local targets = {}
  for host, port in string.gmatch(os.getenv("BENCH_ADDRS") or "", "([^,:]+):(%d+)") do
    targets[#targets + 1] = { host, port }
  end
  if #targets > 0 then
    local target = targets[(threads_made % #targets) + 1]
    thread.addr = wrk.lookup(target[1], target[2])[1]
  end
  thread:set("thread_index", threads_made)
  threads_made = threads_made + 1
end

return common
