#!/usr/bin/env bash
# The figures at a million customers, each beside a floor measured in the
# same run (see README "Benchmarks"):
#   1. bulk import of N customers x C contacts into SQLite (`rapportctl import`),
#   1b. GetProfile / LookupByPhone point reads on that database (the
#      profile-bench example), beside `SELECT 1` on the same pool,
#   2. the due-index rebuild of those N customers: the real profile binary
#      streams ExportProfiles, the real outreach binary plans every customer
#      and writes the index into a private redis-server (the figure is read
#      from outreach's log), beside redis-benchmark's pipelined SET rate on
#      the same Redis,
#   3. no-op care tasks claimed, dispatched and acknowledged per second
#      through the real scripts (rapport-bench's outreach scenario), beside a
#      bare Redis list queue.
# Everything runs on loopback, on private ports, in a temp dir, and is
# stopped at the end (KEEP=1 keeps the work dir for profiling).
# Usage: scripts/bench-1m.sh [customers] [contacts]
# (`make bench-1m`). Writes bench/results/1m.md.
set -euo pipefail
cd "$(dirname "$0")/.."

customers=${1:-1000000}
contacts=${2:-20}
bin=${CARGO_TARGET_DIR:-target}/release
out=bench/results/1m.md
for b in rapportctl rapport-profile rapport-outreach rapport-bench; do
  [ -x "$bin/$b" ] || { echo "build first: cargo build --release --workspace --bins --examples" >&2; exit 1; }
done
reads=$bin/examples/profile-bench
[ -x "$reads" ] || { echo "build first: cargo build --release --workspace --bins --examples" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

echo "== generating $customers customers x $contacts contacts"
"$bin/rapportctl" import "$work/customers.jsonl" --generate "$customers" --contacts "$contacts" >/dev/null
size=$(du -h "$work/customers.jsonl" | cut -f1)

echo "== importing into SQLite"
db="sqlite://$work/profile.db"
t0=$(now)
"$bin/rapportctl" import "$work/customers.jsonl" --database-url "$db" --batch 5000 >"$work/import.log" 2>&1
t1=$(now)
import_s=$(python3 -c "print(round($t1-$t0,1))")
echo "   $import_s s"

echo "== point reads on $customers profiles"
"$reads" --database-url "$db" --customers "$customers" --export-batch 0 >"$work/reads.md"
cat "$work/reads.md"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

profile_port=$(free_port)
env RAPPORT_LISTEN="127.0.0.1:$profile_port" RAPPORT_ADMIN_LISTEN="127.0.0.1:$(free_port)" \
  RAPPORT_TLS_MODE=plaintext RAPPORT_AUTH_MODE=none RAPPORT_DATABASE_URL="$db" RUST_LOG=warn \
  "$bin/rapport-profile" 2>"$work/profile.log" &
pids+=($!)
sleep 2

echo "== rebuilding the due index of $customers customers"
env RAPPORT_LISTEN="127.0.0.1:$(free_port)" RAPPORT_ADMIN_LISTEN="127.0.0.1:$(free_port)" \
  RAPPORT_TLS_MODE=plaintext RAPPORT_AUTH_MODE=none \
  RAPPORT_REDIS_URL="redis://127.0.0.1:$redis_port/" RAPPORT_PROFILE_URL="http://127.0.0.1:$profile_port" \
  RAPPORT_ROUTING_URL="" RUST_LOG=info \
  "$bin/rapport-outreach" 2>"$work/outreach.log" &
pids+=($!)
line=""
for _ in $(seq 600); do
  line=$(grep -m1 'due index rebuilt' "$work/outreach.log" 2>/dev/null || true)
  [ -n "$line" ] && break
  sleep 0.5
done
[ -n "$line" ] || { echo "no rebuild within 300 s; outreach log:" >&2; tail -20 "$work/outreach.log" >&2; exit 1; }
rebuild_s=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['seconds'],1))" "$line")
tasks=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['tasks_created'])" "$line")
rebuilt=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['customers'])" "$line")
echo "   $rebuilt customers, $tasks tasks in $rebuild_s s"
set_rps=$(redis-benchmark -p "$redis_port" -t set -n 200000 -P 16 --csv 2>/dev/null | awk -F'"' '$2 == "SET" {printf "%.0f", $4; exit}')
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

echo "== claim + dispatch + ack of no-op care tasks"
"$bin/rapport-bench" --scenarios outreach --outreach-tasks 200000 --outreach-workers 2 \
  --out "$work/claim" >/dev/null 2>&1
figure() {
  python3 -c "import json,sys; c=[c for c in json.load(open(sys.argv[1]))['comparisons'] if c['figure'].startswith('Outreach')][0]; print(round(c[sys.argv[2]]))" "$work/claim/latest.json" "$1"
}
rate=$(figure value)
floor=$(figure floor_value)
echo "   $rate tasks/s (floor $floor/s)"

mkdir -p bench/results
{
  echo "# A million customers: import, point reads, due-index rebuild, care-task claims"
  echo
  echo "Machine: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · $(date -u '+%Y-%m-%d %H:%M UTC') · load average at end $(cut -d' ' -f1-3 /proc/loadavg) · everything on this machine"
  echo
  echo "| figure | value | floor (same run) | target |"
  echo "|---|---:|---|---|"
  echo "| import $customers customers x $contacts contacts ($size JSONL) into SQLite | $import_s s | | ≤ 120 s for 1M x 20 |"
  echo "| due-index rebuild of $rebuilt customers ($tasks tasks) from profile's ExportProfiles | $rebuild_s s | redis SET pipelined: $set_rps rps | ≤ 60 s for 1M |"
  echo "| no-op care tasks claimed + dispatched + acknowledged, 2 replicas | $rate /s | bare Redis list queue push+pop: $floor /s | ≥ 25,000 /s |"
  echo
  echo "Point reads on the imported database (profile store, SQLite; target GetProfile p99 ≤ 2 ms; floor: \`SELECT 1\` on the same pool):"
  echo
  cat "$work/reads.md"
} >"$out"
cat "$out"
