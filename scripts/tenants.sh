#!/usr/bin/env bash
# Many tenants on one server: loads TENANTS tenants, each with its own WASM
# module (the reference telco policy, 100 candidates, made distinct by a
# custom section so nothing is shared), and reports the server's resident
# memory after loading, after a restart on the same data directory (the
# modules are then mapped from their compiled files, not compiled), and
# after DURATION of decisions spread over every tenant in turn (wrk), with
# the decision rate. Run it with TENANTS=1 for the baseline.
#
# Run: scripts/tenants.sh   (TENANTS=1000 DURATION=20s CONNECTIONS=32)
# Loading 1,000 tenants compiles 1,000 modules: about 2 minutes here.
# Needs: wrk (Debian package); installs it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${TENANTS:-1000}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}

command -v wrk >/dev/null || apt-get install -y -qq wrk
cargo build --release -q -p moment-server --bin moment

source scripts/lib.sh
moment=$(start_moment)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $TENANTS tenants, one WASM module each"
started=$(date +%s)
python3 scripts/tenants_setup.py "http://$moment" "$MOMENT_ROOT_TOKEN" "$(telco_wasm)" "$TENANTS" "$work"
echo "loaded in $(( $(date +%s) - started )) s: RSS $(rss_mib "$(moment_pid)") MiB"

pid=$(moment_pid)
kill "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
: > "$work/pids"
started=$(date +%s%N)
moment=$(start_moment)
echo "restarted in $(( ($(date +%s%N) - started) / 1000000 )) ms: RSS $(rss_mib "$(moment_pid)") MiB"

report=$(BODY_FILE="$work/body.json" KEYS_FILE="$work/keys.txt" \
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/tenants.lua "http://$moment/v1/decide")
echo "decisions over all tenants: $(echo "$report" | awk '/Requests\/sec/ {print $2}') req/s," \
  "p50 $(echo "$report" | awk '$1 == "50%" {print $2}'), p99 $(echo "$report" | awk '$1 == "99%" {print $2}')" \
  "$(echo "$report" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')"
echo "after: RSS $(rss_mib "$(moment_pid)") MiB"
curl -s "http://$moment/metrics" | grep -E '^moment_decisions_total' || true
