#!/usr/bin/env bash
# Installs valkey-server and valkey-tools 8.0.x (and Debian's redis-cli) from Debian's bookworm-backports
# suite when they are missing. The suite is added with the same mirror as the
# machine's own bookworm entry, so no other host is contacted. Also strace,
# which the AOF tests use to prove that replies follow their fsync.
set -euo pipefail
if command -v valkey-server >/dev/null 2>&1 && command -v valkey-benchmark >/dev/null 2>&1 \
   && command -v redis-cli >/dev/null 2>&1 && command -v strace >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb $mirror bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -t bookworm-backports valkey-server valkey-tools >/dev/null
# redis-cli (Redis 7.0's client) too: users point it at us unchanged.
$SUDO apt-get install -y -qq redis-tools >/dev/null
$SUDO apt-get install -y -qq strace >/dev/null
# The package starts a system service on 6379; tests start their own servers.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop valkey-server >/dev/null 2>&1 || true; fi
pkill -x valkey-server >/dev/null 2>&1 || true
valkey-server --version
