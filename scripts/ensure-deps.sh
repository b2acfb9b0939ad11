#!/usr/bin/env bash
# Makes sure the system packages Rapport's commands need are present.
# Usage: scripts/ensure-deps.sh redis [postgres]
# As root, missing packages are installed with apt-get; otherwise the script
# says exactly what to install and fails.
set -euo pipefail

need_redis=0
need_postgres=0
for arg in "$@"; do
  case "$arg" in
    redis) need_redis=1 ;;
    postgres) need_postgres=1 ;;
    *) echo "ensure-deps: unknown dependency '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) first." >&2
  exit 1
fi
if [ "$need_redis" = 1 ] && ! command -v redis-server >/dev/null 2>&1 \
    && [ ! -x /usr/bin/redis-server ]; then
  missing+=(redis-server)
fi
if [ "$need_postgres" = 1 ]; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
  if ! command -v psql >/dev/null 2>&1; then
    missing+=(postgresql-client)
  fi
fi

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts must not start system services we did not ask for.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
