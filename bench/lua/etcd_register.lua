-- etcd's equivalent of register.lua: every request puts a new, unique key holding a
-- registration (what a registry built directly on etcd would write per registration).
-- The rate etcd itself sustains: the baseline of the cluster registration scenario.
-- Arguments: gateway prefix ("/v3").
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local SERVICES = 100
local api
local sent = 0
local run = nil

function init(args)
   api = args[1] or "/v3"
   run = bench.run_nonce()
end

function request()
   local service = "etcd-" .. (sent % SERVICES)
   local address = "etcd-" .. run .. "-" .. thread_id .. "-" .. sent .. ":8080"
   sent = sent + 1
   local key = "/bench/instances/" .. service .. "/" .. address
   local value = '{"service":"' .. service .. '","id":"' .. address .. '","address":"' .. address
      .. '","tags":[],"metadata":{},"weight":100,"status":"UP","registered_at_ms":1764700000000}'
   return bench.post(api .. "/kv/put", '{"key":"' .. bench.base64(key) .. '","value":"' .. bench.base64(value) .. '"}')
end
