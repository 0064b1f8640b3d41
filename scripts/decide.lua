-- wrk script for scripts/load.sh: POSTs the decide body in $BODY_FILE with
-- the key in $DECIDE_KEY, for 10,000 different customers in turn (the word
-- CUSTOMER in the body is replaced by the customer id).
local file = assert(io.open(os.getenv("BODY_FILE"), "r"))
local template = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("DECIDE_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(template, "CUSTOMER", "c-" .. (counter % 10000))
  return wrk.format(nil, nil, nil, body)
end
