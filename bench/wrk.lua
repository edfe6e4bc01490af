-- bench/run's wrk script: one POST, a status tally, a request cap per thread, and the time
-- of the last answer (wrk's own duration is always -d, even when every thread stopped early
-- at its cap; requests/s is answers / (last answer - thread start)).
--
--   wrk ... -s bench/wrk.lua URL -- CONTENT_TYPE BODY_FILE CAP [close]
--
-- CAP: answers per thread after which the thread stops; `close`: send `Connection: close`
-- (a new connection per request). Prints one JSON line starting with {"requests".
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

-- Runs in each thread before its first request: the request is built from wrk.* after it.
function init(args)
  local f = assert(io.open(args[2], "rb"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = args[1]
  wrk.body = f:read("*a")
  f:close()
  if args[4] == "close" then wrk.headers["Connection"] = "close" end
  cap = tonumber(args[3])
  statuses = {} count = 0 t0 = now() last = 0
end

function response(status, headers, body)
  last = now()
  statuses[status] = (statuses[status] or 0) + 1
  count = count + 1
  if count >= cap then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local total, first, final = {}, nil, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
    local t0 = t:get("t0")
    if first == nil or t0 < first then first = t0 end
    if t:get("last") > final then final = t:get("last") end
  end
  local window = 0
  if first ~= nil and final > first then window = final - first end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%d": %d', k, v)) end
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "window_s": %.6f, "p50_us": %d, '
    .. '"p99_us": %d, "mean_us": %.1f, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"statuses": {%s}}\n', summary.requests, summary.duration, window,
    latency:percentile(50), latency:percentile(99), latency.mean, e.connect, e.read, e.write,
    e.status, e.timeout, table.concat(parts, ", ")))
end
