-- The ceiling of the cluster registration scenario: etcd's own transactions, each of
-- `batch` puts of new registrations written straight into the registry's prefix in the
-- registry's own encoding, so that the three replicas' watches carry and mirror them
-- exactly as they do the registry's writes. No registry work happens per write except
-- mirroring it: this is the most any design that commits through etcd's JSON gateway
-- and mirrors by watch could reach on these members, with every connection keeping a
-- full transaction in flight.
-- Arguments: the registry's etcd prefix ("/service-registry/"), puts per transaction (14).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local SERVICES = 100
local prefix = "/service-registry/"
local batch = 14
local sent = 0
local run = nil
local registered_at_ms = nil

function init(args)
   prefix = args[1] or prefix
   batch = tonumber(args[2] or "14")
   run = bench.run_nonce()
   registered_at_ms = run:sub(1, 13)
   ops_per_request = batch
end

function request()
   local operations = {}
   for _ = 1, batch do
      local service = "txn-" .. (sent % SERVICES)
      local address = "txn-" .. run .. "-" .. thread_id .. "-" .. sent .. ":8080"
      sent = sent + 1
      local key = prefix .. "instances/" .. service .. "/" .. address
      local value = '{"address":"' .. address .. '","registered_at_ms":' .. registered_at_ms .. '}'
      operations[#operations + 1] = '{"request_put":{"key":"' .. bench.base64(key) .. '","value":"'
         .. bench.base64(value) .. '"}}'
   end
   return bench.post("/v3/kv/txn", '{"success":[' .. table.concat(operations, ",") .. ']}')
end
