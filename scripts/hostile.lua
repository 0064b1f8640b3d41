-- wrk script for scripts/soak.sh: a hostile tenant's traffic beside the
-- mixed load. Decides in turn on its three hostile policies (map_keys.rhai:
-- the memory probe; spin_then_throw.rhai; loop_forever.rhai), with a decide
-- key. Environment: HOSTILE_KEY.
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("HOSTILE_KEY") }
local points = { "map-keys", "spin", "loop" }
local counter = 0

request = function()
  counter = counter + 1
  local point = points[counter % #points + 1]
  local body = string.format('{"point":"%s","customer_id":"h-%d"}', point, counter % 100)
  return wrk.format("POST", "/v1/decide", headers, body)
end
