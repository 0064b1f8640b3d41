-- wrk script for scripts/soak.sh: mixed traffic for one tenant. Of every 10
-- requests: 7 decide on the WASM policy, 1 on the Rhai policy, 1 patches a
-- customer's profile, 1 reports an outcome (a click on an action a recent
-- decision returned; a decide instead while none is known). 10,000 customers.
-- Environment: WASM_BODY, RHAI_BODY (decide bodies with the word CUSTOMER),
-- DECIDE_KEY, EDITOR_KEY.
local function read(name)
  local file = assert(io.open(os.getenv(name), "r"))
  local text = file:read("*a")
  file:close()
  return text
end
local wasm_body, rhai_body = read("WASM_BODY"), read("RHAI_BODY")
local decide = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("DECIDE_KEY") }
local editor = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("EDITOR_KEY") }
local counter = 0
local recent = {}

local function decide_on(template)
  local body = string.gsub(template, "CUSTOMER", "c-" .. (counter % 10000))
  return wrk.format("POST", "/v1/decide", decide, body)
end

request = function()
  counter = counter + 1
  local slot = counter % 10
  if slot == 0 and #recent > 0 then
    local d = table.remove(recent)
    local body = string.format('{"decision_id":"%s","action_id":"%s","type":"click"}', d[1], d[2])
    return wrk.format("POST", "/v1/outcomes", decide, body)
  elseif slot == 1 then
    local body = string.format('{"attributes":{"visits":%d,"last_page":"p-%d"}}', counter, counter % 97)
    return wrk.format("PATCH", "/v1/customers/c-" .. (counter % 10000), editor, body)
  elseif slot == 2 then
    return decide_on(rhai_body)
  end
  return decide_on(wasm_body)
end

response = function(status, headers, body)
  if #recent < 64 then
    local id = string.match(body, '"decision_id":"([^"]+)"')
    local action = string.match(body, '"actions":%[{"id":"([^"]+)"')
    if id and action then
      table.insert(recent, { id, action })
    end
  end
end
