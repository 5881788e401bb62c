#!/usr/bin/env bash
# Runs inbox-daemon on its embedded default: a virtualenv, the package, a local folder
# (./demo by default) set up by `inbox-daemon init` with SQLite and local folders, then the
# daemon in the foreground (Ctrl-C stops it). No mail or Slack account is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
HOME_DIR=${1:-demo}

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"
      "$PYTHON" -m venv "$VENV"
    else
      echo "python3 -m venv failed: install it with 'sudo apt-get install python3-venv'" >&2
      exit 1
    fi
  fi
fi
"$VENV/bin/python" -m pip install -q -e .
BIN=$(cd "$VENV/bin" && pwd)
[ -f "$HOME_DIR/inbox-daemon.toml" ] || "$BIN/inbox-daemon" init "$HOME_DIR"
cd "$HOME_DIR"
exec "$BIN/inbox-daemon" run
