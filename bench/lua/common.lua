-- Shared by every wrk script in this directory: the naming scheme the
-- populater (bench/populate.py) also uses, and a done() that prints one
-- machine-readable result line for bench/report.py.
--
-- Load it with
--   local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
--   dofile(here .. "common.lua")
-- so the scripts work from any current directory.

bench = {}

-- Instance j of service i.  Addresses are registry data only: nothing ever
-- connects to them.  populate.py builds exactly the same strings.
function bench.service(i)
   return "svc-" .. i
end

function bench.address(j)
   return "127.0.0.1:" .. (20000 + j)
end

function bench.instance_body(service, address)
   return '{"service":"' .. service .. '","address":"' .. address .. '"}'
end

-- A number of this wrk run, the same for every thread of it and different from the runs
-- before it: scripts that must send addresses never sent before (register.lua) put it
-- in them, or a later round would re-register the earlier rounds' instances (an update
-- that changes nothing, no write at all) and count them as registrations.
function bench.run_nonce()
   local clock = io.popen("date +%s%N")
   local nanos = clock:read("*l")
   clock:close()
   return nanos
end

bench.json_headers = { ["Content-Type"] = "application/json" }

function bench.post(path, body)
   return wrk.format("POST", path, bench.json_headers, body)
end

-- etcd's JSON gateway carries keys and values as base64.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function bench.base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local quad = {}
      for k = 4, 1, -1 do
         local v = n % 64
         quad[k] = alphabet:sub(v + 1, v + 1)
         n = (n - v) / 64
      end
      if not b then quad[3] = "=" end
      if not c then quad[4] = "=" end
      out[#out + 1] = table.concat(quad)
   end
   return table.concat(out)
end

-- setup() runs in the main Lua state once per wrk thread, before that
-- thread's init(); it gives each thread a distinct `thread_id` global so
-- threads can generate disjoint names.
thread_id = 0
local threads_started = 0
local threads = {}  -- kept for done()
function setup(thread)
   thread:set("thread_id", threads_started)
   threads[#threads + 1] = thread
   threads_started = threads_started + 1
end

-- wrk 4.1 calls request() once on thread 0 right after its init() to check
-- the request parses (script_verify_request in wrk.c), and never sends what
-- it returns.  A script whose requests must each be sent exactly once (churn:
-- a deregister needs its register) answers that call without advancing.
function bench.first_call_is_unsent()
   return thread_id == 0
end

-- Operations one request carries: a script that batches (etcd_txn_register.lua) sets
-- this global in init(), which runs in each thread's own Lua state; done() runs in the
-- main state and reads it from a thread. The report multiplies req/s by it where it
-- compares operations.
ops_per_request = 1

-- Latencies are in microseconds.  errors_status counts non-2xx/3xx answers,
-- which make a throughput figure meaningless (a 404 is cheaper than a hit).
function done(summary, latency, requests)
   local e = summary.errors
   local ops = threads[1] and threads[1]:get("ops_per_request") or 1
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"rps":%.1f,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"errors_connect":%d,"errors_read":%d,"errors_write":%d,'
      .. '"errors_timeout":%d,"errors_status":%d,"bytes":%d,"ops_per_request":%d}\n',
      summary.requests, summary.duration,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.timeout, e.status, summary.bytes, ops))
end
