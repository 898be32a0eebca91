#!/usr/bin/env bash
# Helm, built from source through the Go module proxy at a pinned version, then run.
#   helm.sh ARGS...   build helm once (cached), then run `helm ARGS...`
#   helm.sh           build helm once (cached) and print the binary's path on stdout
# The binary lives in deploy/tools/.cache/helm-<version>/helm (or under HELM_TOOLS_CACHE).
# Building needs Go >= 1.26 (helm's go.mod) and takes about three minutes the first time on two
# cores; every later run finds the binary and builds nothing.
set -euo pipefail

version=v4.3.2
go_needed=1.26 # the go directive of helm's go.mod at $version
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${HELM_TOOLS_CACHE:-$here/.cache}
dir="$cache/helm-$version"
helm="$dir/helm"
tmp=""

build() {
  command -v go >/dev/null 2>&1 || {
    echo "helm.sh: 'go' not found: install Go >= $go_needed to build helm $version" >&2
    exit 1
  }
  local have
  have=$(go env GOVERSION)
  printf '%s\n%s\n' "go$go_needed" "$have" | sort -V -C || {
    echo "helm.sh: helm $version needs Go >= $go_needed to build, found $have" >&2
    exit 1
  }
  mkdir -p "$cache"
  # One build at a time: a second caller waits for the first and then finds the binary.
  exec 9>"$cache/.helm-$version.lock"
  flock 9
  if [ -x "$helm" ]; then
    return 0
  fi
  local start
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  echo "helm.sh: building helm $version from the Go module proxy (once; a few minutes)" >&2
  # GOTOOLCHAIN=local: use the installed Go, never download another toolchain.
  GOBIN="$tmp" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath" \
    go install -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
    "helm.sh/helm/v4/cmd/helm@$version"
  mkdir -p "$dir"
  mv "$tmp/helm" "$helm.new"
  mv "$helm.new" "$helm"
  rm -rf "$tmp"
  echo "helm.sh: built $helm in $(($(date +%s) - start)) s" >&2
}

[ -x "$helm" ] || build

if [ $# -eq 0 ]; then
  echo "$helm"
  exit 0
fi
exec "$helm" "$@"
