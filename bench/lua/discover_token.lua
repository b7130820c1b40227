-- GET /discover/svc-0 with "Authorization: Bearer TOKEN" (the script's argument): the
-- token's cost, against a registry without an ACL file that ignores the header.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

function init(args)
   wrk.headers["Authorization"] = "Bearer " .. args[1]
end

wrk.method = "GET"
wrk.path = "/discover/" .. bench.service(0)
