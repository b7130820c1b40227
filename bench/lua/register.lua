-- Registration throughput: every request registers a new, unique address (unique across
-- runs too: see bench.run_nonce), so
-- every request is a durable change (a log record, and under --fsync always an
-- fsync before its answer).  The registry grows by one instance per request.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local SERVICES = 100
local sent = 0
local run = nil

function init(args)
   -- Every thread of one run starts at its own time: the nonce tells runs apart, thread_id
   -- tells threads apart.
   run = bench.run_nonce()
end

function request()
   local service = "durable-" .. (sent % SERVICES)
   local address = "durable-" .. run .. "-" .. thread_id .. "-" .. sent .. ":8080"
   sent = sent + 1
   return bench.post("/register", bench.instance_body(service, address))
end
