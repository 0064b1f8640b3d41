#!/usr/bin/env bash
# HTTP load test of POST /v1/decide: Moment with the reference telco policy
# (WASM and Rhai, N candidates, ~1 KB of attributes, 10,000 customers) against
# a bare axum endpoint that only parses the same body (the ceiling), in one run
# on one machine. Prints requests/s, p50/p99 and the ratio to the ceiling at
# peak (wrk), then p50/p99 at a fixed rate of half each peak (oha).
#
# Run: scripts/load.sh            (DURATION=15s CONNECTIONS=32 CANDIDATES=100 by default)
#      CLUSTER=1 scripts/load.sh  (one replica on PostgreSQL and Redis; see scripts/lib.sh)
#      IMPRESSIONS=1 scripts/load.sh  (every decide records its impressions: a
#                                      profile write per decision)
# Needs: wrk (Debian package) and oha (cargo install oha); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
CANDIDATES=${CANDIDATES:-100}

command -v wrk >/dev/null || apt-get install -y -qq wrk
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q -p moment-server --bin moment --example ceiling

source scripts/lib.sh
moment=$(start_moment)
ceiling=$(start "$work/ceiling.out" target/release/examples/ceiling 127.0.0.1:0)
key=$(python3 scripts/load_setup.py "http://$moment" "$MOMENT_ROOT_TOKEN" "$(telco_wasm)" "$CANDIDATES" "$work")
cp "$work/retention-wasm.json" "$work/ceiling.json"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $CANDIDATES candidates; $CONNECTIONS connections; $DURATION per run; store: $([ "${CLUSTER:-0}" = 1 ] && echo "cluster (PostgreSQL + Redis)" || echo embedded)"
printf '%-16s %12s %10s %10s %8s\n' target 'requests/s' 'p50 ms' 'p99 ms' ratio
declare -A peak
for target in ceiling retention-wasm retention-rhai; do
  if [ "$target" = ceiling ]; then addr=$ceiling; auth=""; else addr=$moment; auth=$key; fi
  report=$(BODY_FILE="$work/$target.json" DECIDE_KEY="$auth" \
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/decide.lua "http://$addr/v1/decide")
  rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$report" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$report" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$report" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  peak[$target]=$rps
  printf '%-16s %12.0f %10s %10s %8.2f %s\n' "$target" "$rps" "$p50" "$p99" \
    "$(python3 -c "print($rps / ${peak[ceiling]})")" "$errors"
done

echo
echo "fixed rate, half of each peak (oha, one customer):"
printf '%-16s %12s %10s %10s\n' target 'rate/s' 'p50 ms' 'p99 ms'
for target in ceiling retention-wasm retention-rhai; do
  if [ "$target" = ceiling ]; then addr=$ceiling; auth=(); else addr=$moment; auth=(-H "Authorization: Bearer $key"); fi
  rate=$(python3 -c "print(int(${peak[$target]} / 2))")
  sed 's/CUSTOMER/c-1/' "$work/$target.json" > "$work/$target.one.json"
  oha --no-tui --latency-correction --output-format json -z "$DURATION" -c "$CONNECTIONS" -q "$rate" -m POST \
    -H 'Content-Type: application/json' "${auth[@]}" -D "$work/$target.one.json" "http://$addr/v1/decide" \
    > "$work/$target.oha.json"
  python3 - "$target" "$rate" "$work/$target.oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[3]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(f"{sys.argv[1]:<16} {int(sys.argv[2]):>12} {p['p50'] * 1000:>10.3f} {p['p99'] * 1000:>10.3f}  status {codes}")
PY
done

echo
echo "Moment's own counts over all runs (a fallback under load means a policy hit its deadline):"
curl -s "http://$moment/metrics" | grep -E '^moment_(decisions_total|policy_fallbacks_total|decision_log_lost_total|profiles_unavailable_total)' || true
