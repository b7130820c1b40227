-- etcd's equivalent of POST /heartbeat: renew pre-granted leases with IDs
-- first_id .. first_id + count - 1 (arguments 2 and 3), round-robin.
-- Argument 1: gateway prefix ("/v3").
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local requests = {}
local next_index = 0

function init(args)
   local api = args[1] or "/v3"
   local first_id = tonumber(args[2]) or 1000
   local count = tonumber(args[3]) or 10000
   for id = first_id, first_id + count - 1 do
      requests[#requests + 1] = bench.post(api .. "/lease/keepalive",
         '{"ID":"' .. id .. '"}')
   end
   next_index = thread_id * math.floor(#requests / 2)
end

function request()
   next_index = next_index % #requests + 1
   return requests[next_index]
end
