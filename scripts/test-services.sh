#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite: starts them if they
# are installed but stopped, installs them (as root with apt) if they are missing.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
is_root_with_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$what did not come up" >&2; return 1
}

# --- PostgreSQL ---------------------------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    is_root_with_apt || { echo "PostgreSQL is not running on 127.0.0.1:5432; install it: sudo apt-get install postgresql" >&2; exit 1; }
    apt-get update -q && apt-get install -y -q postgresql
  fi
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  wait_for "PostgreSQL on 127.0.0.1:5432" pg_isready -q -h 127.0.0.1 -p 5432
fi
# Debian's own PostgreSQL asks for a password over TCP: give the postgres role the one the tests use.
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- psql -q -c "ALTER ROLE postgres PASSWORD 'postgres'"
  else
    echo "Cannot log in to PostgreSQL as postgres/postgres on 127.0.0.1; set DATABASE_URL." >&2
    exit 1
  fi
fi

# --- Redis ------------------------------------------------------------------------------------
if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    is_root_with_apt || { echo "Redis is not running on 127.0.0.1:6379; install it: sudo apt-get install redis-server" >&2; exit 1; }
    apt-get update -q && apt-get install -y -q redis-server
  fi
  if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  wait_for "Redis on 127.0.0.1:6379" redis-cli -h 127.0.0.1 -p 6379 ping
fi
echo "PostgreSQL and Redis are answering on 127.0.0.1."
