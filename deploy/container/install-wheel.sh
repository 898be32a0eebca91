#!/bin/sh
# install-wheel.sh WHEEL VENV_DIR
# Creates the virtual environment VENV_DIR and installs Herald from WHEEL with its `http3`
# and `tracing` extras (and their dependencies from the package index), nothing else. The Dockerfile runs
# exactly this step; tests run it outside a container. PYTHON (default python3) is the
# interpreter the environment is made from.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: install-wheel.sh WHEEL VENV_DIR" >&2
  exit 2
fi
wheel=$1
venv=$2
case "$wheel" in
  *.whl) ;;
  *) echo "install-wheel.sh: not a wheel: $wheel" >&2; exit 2 ;;
esac
if [ ! -f "$wheel" ]; then
  echo "install-wheel.sh: no such file: $wheel" >&2
  exit 1
fi

# Files readable by every user, whatever umask the caller has: the venv is owned by whoever
# installs it and run by someone else.
umask 022
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --no-cache-dir --no-input --disable-pip-version-check \
  "$wheel[http3,tracing]"
