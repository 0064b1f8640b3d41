#!/usr/bin/env bash
# Noisy neighbour: a well-behaved tenant's decide latency, alone and while
# a hostile tenant saturates the server, in one run on one machine.
#
# Tenant "load" runs the reference telco policy (WASM, CANDIDATES candidates)
# at a fixed RATE per second (oha, so latency is measured against the
# schedule, not the previous answer). Tenant "noisy" has
# tests/corpus/spin_then_throw.rhai (12 ms of CPU, then an error) and, in
# the second run, is driven at NOISY_RATE per second on NOISY_CONNECTIONS
# connections: at the default 400/s that asks for 4.8 cores' worth of
# spinning, more than twice what the 2-core machine has, so its policy
# is saturated. (NOISY_RATE=0 drives it as fast as it is answered, which
# saturates the machine itself with HTTP work, load generator included.) Its answers
# are counted by fallback reason: `trap` cost 12 ms each; `circuit_open` is
# its breaker serving the fallback without running it; `overloaded` is its
# share of the policy threads used up; a 429 is its request rate at the edge
# (MOMENT_TENANT_RATE_LIMIT, passed to the server). The runs alternate,
# alone then beside, ROUNDS times; the last line is the median of the
# well-behaved tenant's p99s beside the hostile one over the median alone,
# so one noisy run does not decide it.
#
# Run: scripts/noisy.sh   (DURATION=20s ROUNDS=3 RATE=400 NOISY_RATE=400 NOISY_CONNECTIONS=16 CANDIDATES=100)
# Needs: oha (cargo install oha); installs it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-400}
NOISY_RATE=${NOISY_RATE:-400}
NOISY_CONNECTIONS=${NOISY_CONNECTIONS:-16}
CANDIDATES=${CANDIDATES:-100}

command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q -p moment-server --bin moment

source scripts/lib.sh
moment=$(start_moment)
key=$(python3 scripts/load_setup.py "http://$moment" "$MOMENT_ROOT_TOKEN" "$(telco_wasm)" "$CANDIDATES" "$work")
noisy_key=$(python3 - "http://$moment" "$MOMENT_ROOT_TOKEN" "$work" <<'PY'
import json, sys
sys.path.insert(0, "scripts")
from moment_setup import call
base, root, work = sys.argv[1:4]
keys = call(base, "/v1/tenants", root, {"id": "noisy"})["keys"]
upload = json.load(open(f"{work}/upload-retention-rhai.json"))
upload["source"] = open("tests/corpus/spin_then_throw.rhai").read()
call(base, "/v1/policies/loop/versions", keys["editor"], upload)
json.dump({"point": "loop", "customer_id": "c-1"}, open(f"{work}/noisy.json", "w"))
print(keys["decide"])
PY
)
sed 's/CUSTOMER/c-1/' "$work/retention-wasm.json" > "$work/good.json"

good() {
  oha --no-tui --latency-correction --output-format json -z "$DURATION" -c 8 -q "$RATE" -m POST \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $key" -D "$work/good.json" \
    "http://$moment/v1/decide" > "$work/$1.oha.json"
}
noisy() {
  local rate=()
  [ "$NOISY_RATE" != 0 ] && rate=(--latency-correction -q "$NOISY_RATE")
  oha --no-tui --output-format json -z "$DURATION" -c "$NOISY_CONNECTIONS" "${rate[@]}" -m POST \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $noisy_key" -D "$work/noisy.json" \
    "http://$moment/v1/decide" > "$work/$1.oha.json"
}
report() {
  python3 - "$1" "$work/$1.oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
p, s = d["latencyPercentiles"], d["summary"]
codes = d.get("statusCodeDistribution", {})
print(f"{sys.argv[1]:<22} {s['requestsPerSec']:>10.0f} {p['p50'] * 1000:>9.3f} {p['p99'] * 1000:>9.3f} {p['p99.9'] * 1000:>9.3f}  status {codes}")
PY
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; good tenant at $RATE/s, $CANDIDATES candidates; $DURATION per run"
echo "server: tenant rate limit ${MOMENT_TENANT_RATE_LIMIT:-0}/s (0 = none)"
printf '%-22s %10s %9s %9s %9s\n' run 'req/s' 'p50 ms' 'p99 ms' 'p99.9 ms'
for round in $(seq "$ROUNDS"); do
  good "alone-$round"
  report "alone-$round"
  noisy "noisy-$round" &
  good "beside-$round"
  wait
  report "beside-$round"
  report "noisy-$round"
done
python3 - "$work" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
p99 = lambda run: json.load(open(f"{work}/{run}.oha.json"))["latencyPercentiles"]["p99"]
alone = statistics.median(p99(f"alone-{r}") for r in range(1, rounds + 1))
beside = statistics.median(p99(f"beside-{r}") for r in range(1, rounds + 1))
print(f"well-behaved p99, median of {rounds}: alone {alone * 1000:.3f} ms, beside the hostile tenant {beside * 1000:.3f} ms; ratio {beside / alone:.2f}")
PY
echo
echo "noisy tenant's fallbacks by reason, and breaker openings:"
curl -s "http://$moment/metrics" | grep -E '^moment_policy_(fallbacks_total\{engine="rhai"|breaker_opened_total)' || true
