#!/usr/bin/env bash
# Install what the tests need (Python packages, Debian's chromium for the browser tests), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  sudo_if_needed=""
  if [ "$(id -u)" -ne 0 ]; then sudo_if_needed="sudo"; fi
  $sudo_if_needed apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { $sudo_if_needed apt-get update -qq && $sudo_if_needed apt-get install -y -qq chromium; }
fi
python -m pip install -q -r requirements-dev.txt
python -m pytest -q "$@"
