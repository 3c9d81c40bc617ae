#!/usr/bin/env bash
# Debian's Chromium for the end-to-end browser test of `styleavatar serve` (Playwright drives it; no
# browser download from the internet). Skipped with a note when it cannot be installed; the test then skips.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian package: chromium (for the browser test)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: chromium is not installed and apt-get is not usable here; the browser test will be skipped" >&2
fi
