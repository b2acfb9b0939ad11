#!/usr/bin/env bash
# Profile point reads on PostgreSQL at a million customers: a private
# PostgreSQL cluster in a temp dir on a free port (run as the postgres user
# when this runs as root, because initdb refuses root), N customers x C
# contacts bulk-loaded with `rapportctl import`, then the profile-bench
# example (GetProfile / LookupByPhone, closed and open loop) beside
# `SELECT 1` on the same pool. The cluster runs with fsync off, which only
# speeds up the load; the reads measured are unaffected. Nothing outside
# the temp dir is touched.
# Usage: scripts/bench-profile-postgres.sh [customers] [contacts]
# (`make bench-1m` runs it after the SQLite figures). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

customers=${1:-1000000}
contacts=${2:-20}
bin=${CARGO_TARGET_DIR:-target}/release
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL server binaries not found: apt-get install postgresql" >&2; exit 1; }

work=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$work"
  as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" --auth=trust --username=postgres --encoding=UTF8 --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -w -t 30 -l "$work/log" \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c shared_buffers=2GB -c max_connections=50 -c fsync=off -c synchronous_commit=off" start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"

"$bin/rapportctl" import "$work/customers.jsonl" --generate "$customers" --contacts "$contacts" >/dev/null
t0=$(date +%s.%N)
"$bin/rapportctl" import "$work/customers.jsonl" --database-url "$url" --batch 5000 >"$work/import.log" 2>&1
t1=$(date +%s.%N)
rm -f "$work/customers.jsonl"
echo "PostgreSQL: imported $customers customers x $contacts contacts in $(python3 -c "print(round($t1-$t0,1))") s"
echo
"$bin/examples/profile-bench" --database-url "$url" --customers "$customers" --export-batch 0
