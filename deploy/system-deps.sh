#!/usr/bin/env bash
# Installs the Debian packages Herald's tooling needs, only those whose command is missing.
# Idempotent: a second run installs nothing. Usage: system-deps.sh [command:package ...]
# (a "command" that starts with / is a file the package installs).
# Default: what `make run` and `make test` need (Java 17 for Kafka, Maven to fetch it).
set -euo pipefail

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  wanted=(java:openjdk-17-jre-headless mvn:maven)
fi

missing=()
for pair in "${wanted[@]}"; do
  check=${pair%%:*}
  if [[ $check == /* ]]; then
    [ -e "$check" ] || missing+=("${pair#*:}")
  else
    command -v "$check" >/dev/null 2>&1 || missing+=("${pair#*:}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps.sh: please install: ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "system-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
