-- POST /heartbeat for every instance of `services` x `instances` (arguments
-- 1 and 2), round-robin, so each request renews a different, existing lease.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local requests = {}
local next_index = 0

function init(args)
   local services = tonumber(args[1]) or 1000
   local instances = tonumber(args[2]) or 10
   for i = 0, services - 1 do
      for j = 0, instances - 1 do
         requests[#requests + 1] = bench.post("/heartbeat",
            bench.instance_body(bench.service(i), bench.address(j)))
      end
   end
   -- Threads start far apart so they do not renew the same instances in step.
   next_index = thread_id * math.floor(#requests / 2)
end

function request()
   next_index = next_index % #requests + 1
   return requests[next_index]
end
