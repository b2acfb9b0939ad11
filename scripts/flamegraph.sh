#!/usr/bin/env bash
# A flame graph of the whole mesh while RouteCall cycles run saturated: runs
# rapport-bench's route scenario and, while its saturated point runs,
# samples every process the bench started (profile, classification,
# routing, outreach and its private Redis) with perf, then folds the stacks
# with inferno into bench/results/flame-mesh.svg, one tower per process so
# the graph shows how the mesh shares the CPU. perf samples the cpu-clock
# software event, which works on virtual machines without hardware
# counters. Needs perf (Debian: linux-perf) and inferno (cargo install
# inferno). KEEP=1 keeps the work directory (perf.data, folded stacks).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
seconds=${FLAME_SECONDS:-8}
for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || {
    echo "flamegraph: $tool is missing (perf: apt-get install linux-perf; inferno: cargo install inferno)" >&2
    exit 1
  }
done
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
./target/release/rapport-bench --scenarios route --duration 20s --warmup 2s \
  --out "$work/bench" >"$work/bench.log" 2>&1 &
bench=$!
# The saturated point starts right after the 1-in-flight point reports.
for _ in $(seq 1 300); do
  grep -q "RouteCall (100 agents)" "$work/bench.log" 2>/dev/null && break
  sleep 1
done
sleep 4
# The mesh's processes are the bench's children; its Redis is the one
# redis-server among them.
pids=$(pgrep -d, -P "$bench" || true)
[ -n "$pids" ] || { echo "flamegraph: no mesh process found" >&2; wait "$bench"; exit 1; }
for pid in ${pids//,/ }; do ps -o comm= -p "$pid" >"$work/name-$pid" || true; done
perf record -q -F 199 --call-graph dwarf,32768 -p "$pids" -o "$work/perf.data" -- sleep "$seconds"
wait "$bench"
perf script -F +pid -i "$work/perf.data" 2>/dev/null >"$work/perf.txt"
# Fold with each thread's pid, then name every stack's root after its
# process (threads are named tokio-rt-worker in every service).
inferno-collapse-perf --pid "$work/perf.txt" >"$work/pid.folded"
: >"$work/all.folded"
for pid in ${pids//,/ }; do
  name=$(cat "$work/name-$pid" 2>/dev/null || echo "pid-$pid")
  grep -E "^[^;]*-$pid(/[0-9]+)?;" "$work/pid.folded" | sed -E "s/^[^;]*;/$name;/" >>"$work/all.folded" || true
done
inferno-flamegraph --minwidth 0.5 --title "Rapport mesh, RouteCall cycles saturated" <"$work/all.folded" >"$out/flame-mesh.svg"
grep "RouteCall cycle (100" "$work/bench.log" || true
echo "flamegraph: wrote $out/flame-mesh.svg"
