#!/usr/bin/env bash
# Set up .venv and start the demo: warehouse, demo models, SMTP sink, server + web UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gpt2-agent demo "$@"
