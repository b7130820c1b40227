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

-- Services are named churn-N, apart from the svc-N names other scenarios use.
local function name(n)
   return "churn-" .. (n % SERVICES),
      "churn-" .. (thread_id or 0) .. "-" .. n .. ":8080"
end

function request()
   if deregister_next then
      deregister_next = false
      local service, address = name(registered - 1 - LAG)
      return bench.post("/deregister", bench.instance_body(service, address))
   end
   local service, address = name(registered)
   registered = registered + 1
   deregister_next = registered > LAG
   return bench.post("/register", bench.instance_body(service, address))
end
