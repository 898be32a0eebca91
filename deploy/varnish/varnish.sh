#!/usr/bin/env bash
# Varnish (Debian's varnish package) in front of one or more Herald instances.
#   varnish.sh up      write the VCL for PROXY_ORIGINS, start varnishd, wait until it answers
#   varnish.sh down    stop the varnishd started by `up`
#   varnish.sh stat    varnishstat counters of this instance (one line each)
# Environment (all optional): VARNISH_PORT (6081), PROXY_ORIGINS (comma-separated host:port,
# default 127.0.0.1:8080), VARNISH_DIR (.run/varnish), VARNISH_MEMORY (256m),
# VARNISH_FIRST_BYTE_TIMEOUT (75s: longer than Herald's longest long-poll, HERALD_MAX_WAIT_S).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${VARNISH_PORT:-6081}
origins=${PROXY_ORIGINS:-127.0.0.1:8080}
dir=${VARNISH_DIR:-$here/../../.run/varnish}
memory=${VARNISH_MEMORY:-256m}
first_byte=${VARNISH_FIRST_BYTE_TIMEOUT:-75s}
pidfile="$dir/varnishd.pid"
# shellcheck source=../process.sh
. "$here/../process.sh"

command -v varnishd >/dev/null 2>&1 || {
  echo "varnish.sh: 'varnishd' not found: install Varnish (Debian: apt-get install varnish)" >&2
  exit 1
}

write_vcl() {
  local backends="" members="" n=0 origin
  IFS=, read -ra list <<<"$origins"
  for origin in "${list[@]}"; do
    n=$((n + 1))
    backends+="backend herald$n {
    .host = \"${origin%:*}\";
    .port = \"${origin##*:}\";
    .first_byte_timeout = $first_byte;
    .between_bytes_timeout = 75s;
}
"
    members+="origin.add_backend(herald$n);
    "
  done
  awk -v backends="$backends" -v members="$members" '
    /^#@ORIGINS@$/ { printf "%s", backends; next }
    /#@ORIGIN_MEMBERS@$/ { sub(/#@ORIGIN_MEMBERS@/, members); print; next }
    { print }' "$here/herald.vcl" >"$dir/herald.vcl"
}

up() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  pidfile="$dir/varnishd.pid"
  if running "$pidfile"; then
    echo "varnish.sh: already running (pid $(cat "$pidfile"), 127.0.0.1:$port)" >&2
    return 0
  fi
  write_vcl
  # -j none: no privilege separation jail, so it runs the same as root or as a user;
  # -T none: no management port; varnishadm is not needed to run or stop it.
  varnishd -j none -n "$dir/work" -a "127.0.0.1:$port" -T none -f "$dir/herald.vcl" \
    -s "malloc,$memory" -P "$pidfile" -p vcl_path="$dir" >"$dir/varnishd.log" 2>&1 || {
    cat "$dir/varnishd.log" >&2
    exit 1
  }
  wait_for_port varnish.sh "$port"
  echo "varnish.sh: 127.0.0.1:$port -> $origins (pid $(cat "$pidfile"))" >&2
}

counters() {
  varnishstat -n "$dir/work" -1
}

case "${1:-}" in
  up) up ;;
  down) stop "$pidfile" TERM ;;
  stat) counters ;;
  *) echo "usage: varnish.sh up|down|stat" >&2; exit 2 ;;
esac
