-- GET /discover/svc-i, cycling over `services` services (argument 1,
-- default 1).  With one service the request is static, which is the cheapest
-- thing wrk can send: the client then costs as little as possible and the
-- figure is the server's.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local requests = {}
local next_index = 0

function init(args)
   local services = tonumber(args[1]) or 1
   if services == 1 then
      wrk.method = "GET"
      wrk.path = "/discover/" .. bench.service(0)
      return
   end
   for i = 0, services - 1 do
      requests[#requests + 1] = wrk.format("GET", "/discover/" .. bench.service(i))
   end
   next_index = (thread_id or 0) * 7919 % #requests
   request = function()
      next_index = next_index % #requests + 1
      return requests[next_index]
   end
end
