#!/usr/bin/env bash
# Prints the path of a Python interpreter with DuckDB 2.0.0 (the independent reference that the
# pipeline window tests compare against), making a virtualenv in the cache if needed.
set -euo pipefail
version=2.0.0
venv="${AORTA_CACHE:-$HOME/.cache/aorta}/venv-duckdb"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$version')" 2>/dev/null; then
  echo "$py"; exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q "duckdb==$version" >&2
"$py" -c "import duckdb" >&2
echo "$py"
