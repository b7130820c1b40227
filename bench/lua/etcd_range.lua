-- etcd's equivalent of GET /discover/svc-0: a range read over the service's
-- key prefix through the JSON gateway.  Serializable, because the registry
-- also answers from local memory without a consensus round trip; this is the
-- fastest read etcd offers.  Arguments: gateway prefix ("/v3") and the
-- keyspace the populater wrote this scenario's keys under ("/discover-3").
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

function init(args)
   local api = args[1] or "/v3"
   local keyspace = args[2] or "/registry"
   -- range_end is the prefix with its last byte incremented: "/" + 1 = "0".
   local prefix = keyspace .. "/" .. bench.service(0) .. "/"
   local range_end = prefix:sub(1, -2) .. "0"
   wrk.method = "POST"
   wrk.path = api .. "/kv/range"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = '{"key":"' .. bench.base64(prefix) .. '","range_end":"'
      .. bench.base64(range_end) .. '","serializable":true}'
end
