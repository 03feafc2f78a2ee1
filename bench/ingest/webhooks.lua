-- wrk script for bench/ingest: POSTs pre-signed Stripe webhooks, one distinct event per request.
--
-- wrk's Lua has no HMAC, so run.py writes the signed requests to a file first, one per line:
--   <Stripe-Signature header value> TAB <raw JSON body>
-- and passes it here:  [WEBHOOKS_RATE=<r>] wrk ... -s webhooks.lua URL -- <file> <mode> <threads>
--   mode "once":  each wrk thread takes every <threads>-th line (no two threads share an event)
--                 and sends each line once; when its share runs out it sends one request to
--                 /bench-exhausted (a 404, so never counted as accepted) and stops the thread.
--   mode "cycle": every thread cycles through all lines (for the bare endpoint, where a repeated
--                 body does not matter).
--   WEBHOOKS_RATE (environment, requests/s over all threads; unset: as fast as the connections
--                 go): wrk 4 has no fixed-rate option (wrk2's -R), so delay() paces the requests:
--                 each thread sends at rate/threads on a fixed schedule read from
--                 CLOCK_MONOTONIC (LuaJIT's FFI), a request per slot, whatever the answers'
--                 latency (open loop, as vendors send). A slot missed because every connection was busy is sent as
--                 soon as one is free, so the rate falls short only when the server cannot keep
--                 up with the connections given; run.py checks the rate achieved. wrk looks
--                 for delay() once, when it loads the script (before init), so it is defined
--                 only when the variable is set: unpaced runs are exactly as before.
-- done() prints one JSON line (prefixed "WRK_RESULT ") that run.py parses.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local count = 0
local index = 0
local once = true
local rate = tonumber(os.getenv("WEBHOOKS_RATE") or "0") or 0
local interval_ms = nil  -- between two requests of this thread, when paced
local next_at = nil

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } jh_timespec;
  int clock_gettime(int clk_id, jh_timespec *tp);
]]
local now_ts = ffi.new("jh_timespec[1]")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts[0].tv_sec) * 1000 + tonumber(now_ts[0].tv_nsec) / 1e6
end

function init(args)
  local file, mode, nthreads = args[1], args[2], tonumber(args[3])
  once = (mode == "once")
  if rate > 0 then
    interval_ms = 1000.0 * nthreads / rate
  end
  local line_no = 0
  for line in io.lines(file) do
    if (not once) or (line_no % nthreads == tid) then
      local tab = string.find(line, "\t", 1, true)
      local signature = string.sub(line, 1, tab - 1)
      local body = string.gsub(string.sub(line, tab + 1), "\1", "\n")
      count = count + 1
      requests[count] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json; charset=utf-8",
        ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        ["Stripe-Signature"] = signature,
      }, body)
    end
    line_no = line_no + 1
  end
  exhausted = 0
  sent = 0
end

if rate > 0 then
  -- Called by wrk before each request: milliseconds to wait for this request's slot.
  function delay()
    local now = now_ms()
    if next_at == nil then
      next_at = now
    end
    local wait = next_at - now
    next_at = next_at + interval_ms
    if wait <= 0 then
      return 0
    end
    return wait
  end
end

function request()
  index = index + 1
  if index > count then
    if once then
      exhausted = 1
      wrk.thread:set("exhausted", 1)
      wrk.thread:stop()
      return wrk.format("POST", "/bench-exhausted", nil, "")
    end
    index = 1
  end
  return requests[index]
end

function done(summary, latency, requests_stats)
  local exhausted_threads = 0
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") == 1 then
      exhausted_threads = exhausted_threads + 1
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"exhausted_threads":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, exhausted_threads))
end
