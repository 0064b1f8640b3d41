#!/usr/bin/env bash
# Soak: mixed traffic (decides on the WASM and Rhai reference policies,
# profile patches, outcomes; see scripts/soak.lua) against one release server
# for MINUTES minutes, with a new policy version uploaded and activated once a
# minute, and a hostile tenant deciding beside it all along on HOSTILE_CONNECTIONS
# connections (the memory probe map_keys.rhai, spin_then_throw.rhai and
# loop_forever.rhai, in turn; scripts/hostile.lua). Prints, per minute:
# requests/s, p50/p99, errors and the server's
# resident memory; then the memory growth after warm-up: the first WARMUP
# minutes, long enough to fill the caches (at ~1,400 decisions/s the
# 100,000-entry recent-decisions LRU fills in about 70 s).
#
# Run: scripts/soak.sh   (MINUTES=10 WARMUP=2 CONNECTIONS=16 HOSTILE_CONNECTIONS=2 CANDIDATES=100)
# Needs: wrk (Debian package); installs it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
CANDIDATES=${CANDIDATES:-100}
HOSTILE_CONNECTIONS=${HOSTILE_CONNECTIONS:-2}

command -v wrk >/dev/null || apt-get install -y -qq wrk
cargo build --release -q -p moment-server --bin moment

source scripts/lib.sh
moment=$(start_moment)
pid=$(moment_pid)
python3 scripts/load_setup.py "http://$moment" "$MOMENT_ROOT_TOKEN" "$(telco_wasm)" "$CANDIDATES" "$work" > /dev/null
export WASM_BODY="$work/retention-wasm.json" RHAI_BODY="$work/retention-rhai.json"
DECIDE_KEY=$(python3 -c "import json; print(json.load(open('$work/keys.json'))['decide'])")
EDITOR_KEY=$(python3 -c "import json; print(json.load(open('$work/keys.json'))['editor'])")
export DECIDE_KEY EDITOR_KEY
HOSTILE_KEY=$(python3 - "http://$moment" "$MOMENT_ROOT_TOKEN" "$work" <<'PY'
import json, sys
sys.path.insert(0, "scripts")
from moment_setup import call
base, root, work = sys.argv[1:4]
keys = call(base, "/v1/tenants", root, {"id": "hostile"})["keys"]
upload = json.load(open(f"{work}/upload-retention-rhai.json"))
for point, file in [("map-keys", "map_keys"), ("spin", "spin_then_throw"), ("loop", "loop_forever")]:
    upload["source"] = open(f"tests/corpus/{file}.rhai").read()
    call(base, f"/v1/policies/{point}/versions", keys["editor"], upload)
print(keys["decide"])
PY
)
export HOSTILE_KEY
wrk -t1 -c"$HOSTILE_CONNECTIONS" -d"$((MINUTES * 60 + 30))s" -s scripts/hostile.lua "http://$moment" > "$work/hostile.txt" &

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $CANDIDATES candidates; $CONNECTIONS connections; $MINUTES minutes"
echo "RSS at start: $(rss_mib "$pid") MiB"
printf '%6s %10s %9s %9s %8s %8s %9s %8s %8s\n' minute 'req/s' 'p50 ms' 'p99 ms' non-2xx sock-err 'RSS MiB' version log-queue
rss_after_warmup=""
for minute in $(seq 1 "$MINUTES"); do
  # One policy swap per minute: a new version of the WASM point, made live.
  version=$(curl -sf -X POST -H "Authorization: Bearer $EDITOR_KEY" -H 'Content-Type: application/json' \
    --data-binary "@$work/upload-retention-wasm.json" "http://$moment/v1/policies/retention-wasm/versions" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  report=$(wrk -t2 -c"$CONNECTIONS" -d60s --latency -s scripts/soak.lua "http://$moment")
  rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$report" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$report" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$report" | awk '/Non-2xx/ {print $5}')
  sockerr=$(echo "$report" | awk '/Socket errors/ {print $4 $6 $8 $10}')
  rss=$(rss_mib "$pid")
  queued=$(curl -s "http://$moment/metrics" | awk '/^moment_decision_log_queued / {print $2}')
  [ "$minute" = "$WARMUP" ] && rss_after_warmup=$rss
  printf '%6s %10.0f %9s %9s %8s %8s %9s %8s %8s\n' "$minute" "$rps" "$p50" "$p99" "${non2xx:-0}" "${sockerr:-0}" "$rss" "$version" "${queued:-0}"
done
python3 -c "
start, end = $rss_after_warmup, $(rss_mib "$pid")
print(f'RSS after warm-up (minute $WARMUP) {start} MiB, at end {end} MiB: {100 * (end - start) / start:+.1f}%')"
echo
echo "Moment's own counts:"
curl -s "http://$moment/metrics" | grep -E '^moment_(decisions_total|policy_fallbacks_total|policy_breaker_opened_total|outcomes_total|decision_log_lost_total)' || true
curl -s "http://$moment/metrics" | grep -E '^moment_http_requests_total' | grep -v 'status="2' || echo "no HTTP responses other than 2xx"
