-- GET /discover/svc-0 with "Connection: close": every request on a new connection, so over
-- HTTPS every request costs a full TLS handshake (wrk resumes no sessions).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

wrk.method = "GET"
wrk.path = "/discover/" .. bench.service(0)
wrk.headers["Connection"] = "close"
