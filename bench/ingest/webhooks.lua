-- wrk script for bench/ingest: POSTs pre-signed Stripe webhooks, one distinct event per request.
--
-- wrk's Lua has no HMAC, so run.py writes the signed requests to a file first, one per line:
--   <Stripe-Signature header value> TAB <raw JSON body>
-- and passes it here:  wrk ... -s webhooks.lua URL -- <file> <mode> <threads>
--   mode "once":  each wrk thread takes every <threads>-th line (no two threads share an event)
--                 and sends each line once; when its share runs out it sends one request to
--                 /bench-exhausted (a 404, so never counted as accepted) and stops the thread.
--   mode "cycle": every thread cycles through all lines (for the bare endpoint, where a repeated
--                 body does not matter).
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

function init(args)
  local file, mode, nthreads = args[1], args[2], tonumber(args[3])
  once = (mode == "once")
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
