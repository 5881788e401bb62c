#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Python 3.11:
# Debian packages the integration tests need (when run as root), a virtualenv with the project
# and its dev tools, then ruff, mypy, the import-layer contract and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

as_root() { [ "$(id -u)" = 0 ]; }

# --- Debian packages ------------------------------------------------------------------------
if as_root && command -v apt-get >/dev/null 2>&1; then
  need=()
  # libpango*, fonts: WeasyPrint's PDF of the case document; chromium: its HTML in a browser.
  for pkg in dovecot-imapd python3-venv systemd libpango-1.0-0 libpangoft2-1.0-0 \
      fonts-dejavu-core chromium; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null && ! command -v pg_ctlcluster >/dev/null; then
    need+=(postgresql)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Dovecot is started by the tests themselves on their own ports; keep the system one quiet.
  if command -v pg_ctlcluster >/dev/null 2>&1 && ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    echo "== starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    grep -q "inbox-daemon tests" "$hba" || {
      sed -i '1i # inbox-daemon tests: trust local TCP connections\nhost all postgres 127.0.0.1/32 trust' "$hba"
    }
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
fi

# --- Python ---------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -e ".[dev]"

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy"
echo "== import layers"
"$VENV/bin/lint-imports"
echo "== pytest"
exec "$VENV/bin/pytest" "$@"
