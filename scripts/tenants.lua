-- wrk script for scripts/tenants.sh: POSTs the decide body in $BODY_FILE
-- with the tenants' decide keys in $KEYS_FILE (one per line) in turn, for
-- 10,000 different customers.
local file = assert(io.open(os.getenv("BODY_FILE"), "r"))
local template = file:read("*a")
file:close()
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  if line ~= "" then keys[#keys + 1] = line end
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Authorization"] = "Bearer " .. keys[counter % #keys + 1]
  local body = string.gsub(template, "CUSTOMER", "c-" .. (counter % 10000))
  return wrk.format(nil, nil, nil, body)
end
