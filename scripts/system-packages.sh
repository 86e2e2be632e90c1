#!/usr/bin/env bash
# Installs the Debian packages a purpose needs, when they are missing:
#   scripts/system-packages.sh venv   python3-venv (to create the virtualenv)
#   scripts/system-packages.sh run    haproxy, stunnel4, keepalived
#   scripts/system-packages.sh test   the above, plus chromium, postgresql, redis-server, iproute2
#   scripts/system-packages.sh bench  haproxy and wrk
# As root with apt it installs them; otherwise it says exactly what to install and fails.
set -euo pipefail

purpose=${1:?usage: $0 venv|run|test|bench}
PATH="$PATH:/usr/sbin:/sbin"

# command-that-must-exist:package
declare -a wanted=()
case "$purpose" in
  venv) wanted=("ensurepip:python3-venv") ;;
  run) wanted=("haproxy:haproxy" "stunnel4:stunnel4" "keepalived:keepalived") ;;
  test) wanted=("haproxy:haproxy" "stunnel4:stunnel4" "keepalived:keepalived"
                "chromium:chromium" "ip:iproute2" "pg_isready:postgresql-client"
                "redis-cli:redis-tools") ;;
  bench) wanted=("haproxy:haproxy" "wrk:wrk") ;;
  *) echo "usage: $0 venv|run|test|bench" >&2; exit 2 ;;
esac

missing=()
for entry in "${wanted[@]}"; do
  cmd=${entry%%:*} package=${entry#*:}
  if [ "$cmd" = ensurepip ]; then
    python3 -c 'import ensurepip' 2>/dev/null || missing+=("$package")
  elif ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "Missing system packages. Install them with:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
