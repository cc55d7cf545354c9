-- wrk script: POST signed Shopee pushes, cycling through a file of distinct ones.
--
--   wrk -t T -c C -d D --latency -s bench/wrk/pushes.lua URL -- PUSHES_FILE RATE THREADS SEND_SECONDS
--
-- PUSHES_FILE   one push per line, "<hex signature>\t<json body>" (bench/ingest.py writes it)
-- RATE          requests/s over all threads; 0 = as fast as the connections allow. Paced
--               threads follow a fixed timeline: a request starts at its slot, or at once
--               when late.
-- THREADS       wrk's -t, to split RATE between the threads
-- SEND_SECONDS  no new request starts after this many seconds (0 = never stop). Run wrk for
--               longer than this, so that every request sent is answered before wrk exits
--               and the answers can be compared exactly with what the server did.
--
-- done() prints one line "BENCH_JSON {...}": status counts, requests sent and answered,
-- the sending window, wrk's errors and latency percentiles (microseconds).

local ffi = require("ffi")
ffi.cdef[[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC: one clock for all threads
   return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local n = 0
local i = 0
local interval_ms = 0
local next_ms = 0
local stop_ms = 0

function init(args)
   statuses = {}
   sent = 0
   first_ms = 0
   last_ms = 0
   local path = args[1]
   local rate = tonumber(args[2] or "0") or 0
   local nthreads = tonumber(args[3] or "1") or 1
   local send_seconds = tonumber(args[4] or "0") or 0
   for line in io.lines(path) do
      local tab = line:find("\t", 1, true)
      if tab then
         local headers = {}
         headers["Authorization"] = line:sub(1, tab - 1)
         headers["Content-Type"] = "application/json"
         n = n + 1
         requests[n] = wrk.format("POST", nil, headers, line:sub(tab + 1))
      end
   end
   if n == 0 then
      error("no pushes in " .. tostring(path))
   end
   -- threads start at different places in the file, so they do not send the same push together
   i = math.floor(n * id / math.max(nthreads, 1))
   local start = now_ms()
   if rate > 0 then
      interval_ms = 1000 * nthreads / rate
   end
   next_ms = start
   if send_seconds > 0 then
      stop_ms = start + send_seconds * 1000
   end
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return requests[i]
end

-- wrk calls delay() before every request (also when unpaced, so that both the ingest
-- service and the bare endpoint see exactly the same client behaviour)
function delay()
   local now = now_ms()
   if stop_ms > 0 and now >= stop_ms then
      return 3600000 -- stop sending; wrk's own deadline ends the run
   end
   -- counted here rather than in request(): wrk calls request() once more to inspect it
   sent = sent + 1
   if first_ms == 0 then
      first_ms = now
   end
   if interval_ms == 0 then
      return 0
   end
   local slot = next_ms
   next_ms = next_ms + interval_ms
   local wait = slot - now
   if wait < 0 then
      return 0
   end
   return wait
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   last_ms = now_ms()
end

local function encode(value)
   local t = type(value)
   if t == "table" then
      local parts = {}
      for k, v in pairs(value) do
         table.insert(parts, string.format("%q:%s", tostring(k), encode(v)))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif t == "number" then
      return string.format("%.17g", value)
   elseif t == "string" then
      return string.format("%q", value)
   end
   return "null"
end

function done(summary, latency, requests)
   local total = {}
   local total_sent = 0
   local first, last = 0, 0
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if s then
         for status, count in pairs(s) do
            local key = tostring(status)
            total[key] = (total[key] or 0) + count
         end
      end
      total_sent = total_sent + (thread:get("sent") or 0)
      local f, l = thread:get("first_ms") or 0, thread:get("last_ms") or 0
      if f > 0 and (first == 0 or f < first) then
         first = f
      end
      if l > last then
         last = l
      end
   end
   local out = {
      statuses = total,
      sent = total_sent,
      requests = summary.requests,
      duration_us = summary.duration,
      window_us = (last - first) * 1000,
      bytes = summary.bytes,
      errors = summary.errors,
      latency_us = {
         min = latency.min,
         max = latency.max,
         mean = latency.mean,
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
   }
   io.write("BENCH_JSON " .. encode(out) .. "\n")
end
