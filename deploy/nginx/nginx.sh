#!/usr/bin/env bash
# nginx (Debian's nginx package) terminating TLS (HTTP/2) in front of Herald instances.
#   nginx.sh up      write the config for PROXY_ORIGINS, start nginx, wait until it answers
#   nginx.sh down    stop the nginx started by `up`
# Environment (all optional): NGINX_PORT (8443), PROXY_ORIGINS (comma-separated host:port,
# default 127.0.0.1:8080), NGINX_DIR (.run/nginx), NGINX_TLS_CERT and NGINX_TLS_KEY (default:
# a self-signed certificate for 127.0.0.1 and localhost, made once in NGINX_DIR).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${NGINX_PORT:-8443}
origins=${PROXY_ORIGINS:-127.0.0.1:8080}
dir=${NGINX_DIR:-$here/../../.run/nginx}
# shellcheck source=../process.sh
. "$here/../process.sh"

command -v nginx >/dev/null 2>&1 || {
  echo "nginx.sh: 'nginx' not found: install nginx (Debian: apt-get install nginx)" >&2
  exit 1
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile="$dir/nginx.pid"
cert=${NGINX_TLS_CERT:-$dir/tls.crt}
key=${NGINX_TLS_KEY:-$dir/tls.key}

self_signed() {
  [ -f "$cert" ] && [ -f "$key" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$key" -out "$cert" 2>/dev/null
}

write_conf() {
  local upstreams="" origin user=""
  IFS=, read -ra list <<<"$origins"
  for origin in "${list[@]}"; do
    upstreams+="server $origin max_fails=1 fail_timeout=2s;
        "
  done
  mkdir -p "$dir/tmp"
  if [ "$(id -u)" = 0 ]; then
    # Workers never run as root: Debian's www-data, owning only the temp files.
    user="user www-data;"
    chown www-data "$dir/tmp"
  fi
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" \
    -e "s|^#@USER@$|$user|" "$here/herald.conf" |
    awk -v upstreams="$upstreams" '/#@UPSTREAMS@$/ { sub(/#@UPSTREAMS@/, upstreams) } { print }' \
      >"$dir/nginx.conf"
}

up() {
  if running "$pidfile"; then
    echo "nginx.sh: already running (pid $(cat "$pidfile"), https://127.0.0.1:$port)" >&2
    return 0
  fi
  self_signed
  write_conf
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
  wait_for_port nginx.sh "$port"
  echo "nginx.sh: https://127.0.0.1:$port -> $origins (pid $(cat "$pidfile"))" >&2
}

case "${1:-}" in
  up) up ;;
  down) stop "$pidfile" QUIT ;; # QUIT: finish the requests in flight, then stop
  *) echo "usage: nginx.sh up|down" >&2; exit 2 ;;
esac
