#!/usr/bin/env bash
# Installs what the browser, PostgreSQL and Redis tests need (Debian's chromium, postgresql and
# redis-server) where this user may: as root, or with passwordless sudo. Never fails the build: a
# machine that cannot install them runs the other tests, and those tests skip naming what is missing.
# Set KESTREL_NO_APT=1 to never install anything.
set -u
have() { local found; found=$(command -v "$1" 2>/dev/null) && [ -x "$found" ]; }  # as the tests look (executable)
missing=()
have chromium || have chromium-browser || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
have redis-server || missing+=(redis-server)
((${#missing[@]})) || exit 0

if [ "${KESTREL_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test services: ${missing[*]} not installed; the tests that need them will skip (apt-get install ${missing[*]})"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "test services: ${missing[*]} not installed and this user cannot install packages; the tests that need them will skip (sudo apt-get install ${missing[*]})"
  exit 0
fi
echo "test services: installing ${missing[*]} from Debian's packages (once)"
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "test services: could not install ${missing[*]}; the tests that need them will skip"
fi
exit 0
