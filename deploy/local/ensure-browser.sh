#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium through Playwright. Install it if missing
# (as root, or with sudo); say what to do otherwise.
set -u
if command -v chromium >/dev/null; then exit 0; fi
echo "chromium is not installed; installing Debian's package (apt-get install chromium)"
if [ "$(id -u)" = 0 ]; then
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
elif command -v sudo >/dev/null; then
  sudo apt-get install -y -q chromium >/dev/null || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null; }
fi
command -v chromium >/dev/null || { echo "install chromium (apt-get install chromium): the browser tests need it" >&2; exit 1; }
