#!/usr/bin/env bash
# Call-center retention, end to end: an agent's desktop asks Moment what to
# offer a customer who called to cancel.
#
# Shows: creating a tenant, uploading the reference telco retention policy
# (the Rhai twin, with its catalog), asking for decisions for two callers with
# different reasons and tenure, reading `explain`, and rolling back.
#
# Run a server in another terminal first, with an operator token:
#   export MOMENT_ROOT_TOKEN=$(head -c 24 /dev/urandom | base64)
#   cargo run -- serve
# then, in this terminal (same MOMENT_ROOT_TOKEN; needs curl and python3):
#   examples/call-center-retention.sh [http://127.0.0.1:8080]
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
here=$(cd "$(dirname "$0")" && pwd)
: "${MOMENT_ROOT_TOKEN:?set MOMENT_ROOT_TOKEN to the operator token of the server}"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
call() { curl -sS --fail-with-body "$@" -H 'Content-Type: application/json'; echo; }

tenant="telco-$RANDOM"
echo "== create tenant $tenant"
keys=$(call "$base/v1/tenants" -H "Authorization: Bearer $MOMENT_ROOT_TOKEN" -d "{\"id\":\"$tenant\"}")
editor=$(echo "$keys" | json 'd["keys"]["editor"]')
decide=$(echo "$keys" | json 'd["keys"]["decide"]')

echo "== upload the retention policy (Rhai) with its catalog, live at once"
upload=$(python3 - "$here/../policies/telco-retention" <<'PY'
import json, sys
d = sys.argv[1]
bundle = json.load(open(f"{d}/bundle.json"))
bundle.update(engine="rhai", source=open(f"{d}/policy.rhai").read(), activate=True)
print(json.dumps(bundle))
PY
)
call "$base/v1/policies/retention-call/versions" -H "Authorization: Bearer $editor" -d "$upload"

echo "== a long-standing at-risk customer calls about price"
call "$base/v1/decide" -H "Authorization: Bearer $decide" -d '{
  "point":"retention-call","customer_id":"c-1001","stage":"at-risk","channel":"call-center",
  "attributes":{"tenure_months":40,"complaints_90d":0,"plan":"family"},"context":{"reason":"price"}}'

echo "== a newer customer with complaints calls about service; explain the ranking"
call "$base/v1/decide" -H "Authorization: Bearer $decide" -d '{
  "point":"retention-call","customer_id":"c-1002","stage":"at-risk","channel":"call-center",
  "attributes":{"tenure_months":5,"complaints_90d":3},"context":{"reason":"service"},
  "limit":2,"explain":true}'

echo "== upload a broken version: callers get the fallback, never an error"
broken=$(echo "$upload" | python3 -c '
import json, sys
bundle = json.load(sys.stdin)
bundle["source"] = "fn decide(ctx) { throw \"oops\" }"
print(json.dumps(bundle))')
call "$base/v1/policies/retention-call/versions" -H "Authorization: Bearer $editor" -d "$broken"
call "$base/v1/decide" -H "Authorization: Bearer $decide" \
  -d '{"point":"retention-call","customer_id":"c-1001","stage":"at-risk","channel":"call-center"}'

echo "== roll back to version 1"
call "$base/v1/policies/retention-call/activate" -H "Authorization: Bearer $editor" -d '{"version":1}'
call "$base/v1/policies/retention-call" -H "Authorization: Bearer $editor"
