# Shared by scripts/load.sh, noisy.sh and soak.sh: source it after `cd` to the
# repository root. Sets $work (a temporary directory removed on exit, with
# every background job killed).
#
# With CLUSTER=1, `moment` runs on the cluster store instead of the embedded
# one: a fresh database on the PostgreSQL of $MOMENT_TEST_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/test, which must exist) and a fresh key
# prefix on the Redis of $MOMENT_TEST_REDIS (default redis://127.0.0.1:6379);
# both are removed on exit.

work=$(mktemp -d)
export MOMENT_ROOT_TOKEN="load-root-token-$RANDOM$RANDOM$RANDOM"
cleanup() {
  # Servers are started inside $(…), so they are not this shell's jobs:
  # their pids are kept in $work/pids.
  kill $(jobs -p) $(cat "$work/pids" 2>/dev/null) 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${cluster_db:-}" ]; then
    psql -q "$cluster_admin" -c "DROP DATABASE IF EXISTS $cluster_db WITH (FORCE)" || true
    redis-cli -u "$MOMENT_REDIS_URL" --scan --pattern "$cluster_db:*" | xargs -r redis-cli -u "$MOMENT_REDIS_URL" del >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${CLUSTER:-0}" = 1 ]; then
  cluster_admin=${MOMENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
  cluster_db="moment_load_$(date +%s)_$RANDOM"
  psql -q "$cluster_admin" -c "CREATE DATABASE $cluster_db"
  export MOMENT_POSTGRES_URL="${cluster_admin%/*}/$cluster_db"
  export MOMENT_REDIS_URL=${MOMENT_TEST_REDIS:-redis://127.0.0.1:6379}
  export MOMENT_REDIS_PREFIX=$cluster_db
fi

# Starts a server that prints "… listening on http://ADDR" first; echoes ADDR.
start() {
  local out=$1; shift
  "$@" > "$out" 2> "$out.err" &
  echo $! >> "$work/pids"
  for _ in $(seq 1 100); do
    if grep -q 'listening on http://' "$out" 2>/dev/null; then
      sed -n 's/.*listening on http:\/\///p' "$out" | head -1
      return
    fi
    sleep 0.1
  done
  echo "server did not start: $(cat "$out.err")" >&2
  exit 1
}

# Starts the release `moment` on a fresh data dir in $work; echoes ADDR.
start_moment() {
  MOMENT_LOG=warn start "$work/moment.out" target/release/moment serve --listen 127.0.0.1:0 --data "$work/data"
}

# The reference telco policy built for wasm32 (committed).
telco_wasm() {
  ls policies/telco-retention/policy.wasm
}

# The pid of the first server started.
moment_pid() {
  head -1 "$work/pids"
}

# Resident memory of process $1, in MiB.
rss_mib() {
  awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}
