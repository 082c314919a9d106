#!/usr/bin/env bash
# make lint: the source rules of scripts/lint.py (system python3: a python3 earlier on PATH may
# be a slow shim).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/lint.py"
