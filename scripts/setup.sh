#!/usr/bin/env bash
# Create .venv and install GPT-2 Agent into it (idempotent). Usage: scripts/setup.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extra=""
if [ "${1:-}" = "dev" ]; then extra="[dev]"; fi
# torch==2.13.0 (CPU) is pinned in pyproject.toml; pip finds the local wheel where one exists.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
