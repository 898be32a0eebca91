# Shared by the deploy scripts that run a daemon from a pid file (sourced, not run).

# running PIDFILE: the process of PIDFILE is alive.
running() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# wait_for_port NAME PORT: until 127.0.0.1:PORT accepts connections (10 s at most).
wait_for_port() {
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -lt 200 ] || { echo "$1: not answering on 127.0.0.1:$2" >&2; return 1; }
    sleep 0.05
  done
}

# stop PIDFILE SIGNAL: send SIGNAL to the process of PIDFILE and wait until it is gone.
stop() {
  running "$1" || return 0
  local pid
  pid=$(cat "$1")
  kill "-$2" "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$1"
}
