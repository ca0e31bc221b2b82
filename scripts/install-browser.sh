#!/bin/sh
# Chromium for the browser tests: Debian's package when running as root (Playwright's
# own download is not available everywhere), else Playwright's own build.
set -eu
venv="$1"
if [ -n "${KGI_CHROMIUM:-}" ] && [ -x "$KGI_CHROMIUM" ]; then exit 0; fi
for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -x "$candidate" ] && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    "$venv/bin/python" -m playwright install chromium
fi
