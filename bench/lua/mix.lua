-- 90% GET /discover over `services` services, 10% POST /heartbeat over their
-- `instances` instances each (arguments 1 and 2).  Every tenth request is the
-- heartbeat, so the mix is exact rather than random.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local discovers, heartbeats = {}, {}
local counter = 0

function init(args)
   local services = tonumber(args[1]) or 1000
   local instances = tonumber(args[2]) or 3
   for i = 0, services - 1 do
      discovers[#discovers + 1] = wrk.format("GET", "/discover/" .. bench.service(i))
      for j = 0, instances - 1 do
         heartbeats[#heartbeats + 1] = bench.post("/heartbeat",
            bench.instance_body(bench.service(i), bench.address(j)))
      end
   end
   counter = thread_id * 100003
end

function request()
   counter = counter + 1
   if counter % 10 == 0 then
      return heartbeats[(counter / 10) % #heartbeats + 1]
   end
   return discovers[counter % #discovers + 1]
end
