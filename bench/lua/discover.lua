-- GET /discover/svc-0, the same request every time.  A static request is the
-- cheapest thing wrk can send, so the client costs as little as possible and
-- the figure is the server's.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

wrk.method = "GET"
wrk.path = "/discover/" .. bench.service(0)
