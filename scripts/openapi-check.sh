#!/usr/bin/env bash
# Property-based check of the served OpenAPI document with schemathesis: a
# client generated from /openapi.json must never meet a 5xx, a status the
# document does not list, or a body that does not match its schema.
#
# Starts `moment` (the debug build `cargo test` left, else it builds one) on
# a fresh data directory with a tenant, a live policy and an experiment, then
# runs schemathesis twice: as the operator (POST /v1/tenants, with the root
# token) and as the tenant's admin key (every other route; admin can do all
# an editor or a decide key can). Every check runs but
# positive_data_acceptance: requests valid by the schema are still refused
# when they name what does not exist (a decision point without a policy, a
# decision never made), which the document lists as 404 and 422. Needs schemathesis: `pip install
# schemathesis` (.ci/run installs it). EXAMPLES= sets the examples per
# operation (default 60), SEED= the generator's seed (default 42), ONLY_PATH=
# limits the second run to one path.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

cargo build -q -p moment-server --bin moment
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/moment
addr=$(MOMENT_LOG=error start "$work/moment.out" "$bin" serve --listen 127.0.0.1:0 --data "$work/data")
base="http://$addr"

admin=$(python3 - "$base" <<'PY'
import sys, os
sys.path.insert(0, "scripts")
from moment_setup import call
base = sys.argv[1]
keys = call(base, "/v1/tenants", os.environ["MOMENT_ROOT_TOKEN"], {"id": "acme"})["keys"]
bundle = {"engine": "rhai",
          "source": "fn decide(ctx) { let out = []; for c in ctx.candidates { out.push(#{id: c.id, score: c.value}); } out }",
          "catalog": [{"id": "big", "kind": "offer", "value": 20.0}, {"id": "hello", "kind": "message"}],
          "fallback": ["hello"], "activate": True}
call(base, "/v1/policies/hero/versions", keys["editor"], bundle)
bundle["activate"] = False
call(base, "/v1/policies/hero/versions", keys["editor"], bundle)
call(base, "/v1/experiments", keys["editor"],
     {"id": "hero-test", "point": "hero", "goal": "convert", "variants": [
         {"id": "control", "version": 1, "weight": 0.5}, {"id": "treatment", "version": 2, "weight": 0.5}]})
print(keys["admin"])
PY
)

run() {
  st run "$base/openapi.json" --checks all \
    --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing --max-examples "${EXAMPLES:-60}" --workers 1 \
    --suppress-health-check all --seed "${SEED:-42}" "$@"
}
echo "== as the operator: POST /v1/tenants"
run -H "Authorization: Bearer $MOMENT_ROOT_TOKEN" --include-path /v1/tenants
echo "== as the tenant's admin: every other route"
run -H "Authorization: Bearer $admin" --exclude-path /v1/tenants ${ONLY_PATH:+--include-path "$ONLY_PATH"}
