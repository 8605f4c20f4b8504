#!/usr/bin/env bash
# Install Debian's chromium (the headless browser of the portal's end-to-end tests), idempotently.
#
# The tests drive it with Playwright for Python through `executable_path` (tests/browser.py): no
# browser is ever downloaded by Playwright (`playwright install` is never run), so the Chromium
# is the distribution's, updated with the rest of the system.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium; then
  exit 0
fi

if ! have apt-get; then
  echo "install_chromium: chromium is missing and apt-get is not available; install Chromium by hand" >&2
  exit 1
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core

if ! have chromium; then
  echo "install_chromium: apt-get finished but chromium is still missing" >&2
  exit 1
fi
