-- etcd's equivalent of churn.lua: put a new key attached to a lease (a
-- registration), then delete the key put LAG puts earlier (a deregistration),
-- and alternate.  The lag has the same reason as in churn.lua.
-- Arguments: gateway prefix ("/v3"), lease ID shared by all keys.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local LAG = 1000
local SERVICES = 100
local api, lease
local put_count = 0
local delete_next = false
local unsent_call_pending = false

local function key(n)
   local address = "churn-" .. thread_id .. "-" .. n .. ":8080"
   return "/churn/churn-" .. (n % SERVICES) .. "/" .. address, address
end

local function put_request(n)
   local k, address = key(n)
   local value = '{"address":"' .. address .. '"}'
   return bench.post(api .. "/kv/put", '{"key":"' .. bench.base64(k) .. '","value":"'
      .. bench.base64(value) .. '","lease":"' .. lease .. '"}')
end

function init(args)
   api = args[1] or "/v3"
   lease = args[2] or "0"
   unsent_call_pending = bench.first_call_is_unsent()
end

function request()
   if unsent_call_pending then
      unsent_call_pending = false
      return put_request(put_count)
   end
   if delete_next then
      delete_next = false
      local k = key(put_count - 1 - LAG)
      return bench.post(api .. "/kv/deleterange", '{"key":"' .. bench.base64(k) .. '"}')
   end
   local r = put_request(put_count)
   put_count = put_count + 1
   delete_next = put_count > LAG
   return r
end
