#!/usr/bin/env bash
# Set up .venv with the dev tools and run the whole suite: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev

# Browser tests drive Debian's chromium; install it when we can (root + apt), else they skip.
# A small Chinese font too, so the screenshots of the zh pages show characters, not boxes.
PACKAGES="chromium fonts-wqy-microhei"
if { [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; } \
  && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing $PACKAGES for the browser tests..."
  (apt-get install -y -qq $PACKAGES >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $PACKAGES >/dev/null 2>&1)) \
    || echo "could not install $PACKAGES: browser tests will be skipped"
fi

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
