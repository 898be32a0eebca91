#!/usr/bin/env bash
# Waits until Herald on HERALD_BIND (default 127.0.0.1:8080) answers /readyz with 200: after
# `make run &`, whose first run fetches Kafka and installs the venv (minutes). Gives up after
# READY_TIMEOUT seconds (default 900).
set -euo pipefail
bind=${HERALD_BIND:-127.0.0.1:8080}
timeout=${READY_TIMEOUT:-900}
url="http://$bind/readyz"
python3 - "$url" "$timeout" <<'PY'
import sys, time, urllib.error, urllib.request

url, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
said = 0.0
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                print(f"ready: {url}", file=sys.stderr)
                break
    except (urllib.error.URLError, OSError):
        pass
    now = time.monotonic()
    if now > deadline:
        sys.exit(f"not ready after {timeout:.0f}s: {url}")
    if now - said > 15:
        print(f"waiting for {url} (a first run fetches Kafka: minutes)", file=sys.stderr)
        said = now
    time.sleep(0.5)
PY
