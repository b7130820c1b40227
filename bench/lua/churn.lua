-- Registry churn: every request is one write.  Register a new, unique
-- address, then deregister the one registered LAG registrations earlier, and
-- alternate.
--
-- Why the lag: wrk spreads one thread's requests over many connections and
-- the server may read those sockets in any order, so a deregister sent right
-- after its register could overtake it and get a 404.  LAG is far larger than
-- the connections per thread, so the register has long been answered.  The
-- first LAG requests of each thread are registers only; after that the
-- registry holds about LAG instances per thread.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local LAG = 1000
local SERVICES = 100
local registered = 0
local deregister_next = false
local unsent_call_pending = false

-- Services are named churn-N, apart from the svc-N names other scenarios use.
local function register_request(n)
   local service = "churn-" .. (n % SERVICES)
   local address = "churn-" .. thread_id .. "-" .. n .. ":8080"
   return bench.post("/register", bench.instance_body(service, address))
end

local function deregister_request(n)
   local service = "churn-" .. (n % SERVICES)
   local address = "churn-" .. thread_id .. "-" .. n .. ":8080"
   return bench.post("/deregister", bench.instance_body(service, address))
end

function init(args)
   unsent_call_pending = bench.first_call_is_unsent()
end

function request()
   if unsent_call_pending then
      unsent_call_pending = false
      return register_request(registered)
   end
   if deregister_next then
      deregister_next = false
      return deregister_request(registered - 1 - LAG)
   end
   local r = register_request(registered)
   registered = registered + 1
   deregister_next = registered > LAG
   return r
end
