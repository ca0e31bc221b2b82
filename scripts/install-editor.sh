#!/bin/sh
# The site's front-end packages (TinyMCE and its German interface) from the npm registry,
# as package-lock.json pins them, into node_modules/: the site serves them itself, no CDN.
# Node.js and npm come from Debian when they are missing. Runs again only when the lock
# file changed (the stamp is node_modules/.installed).
set -eu
cd "$(dirname "$0")/.."
if [ -f node_modules/.installed ] && [ node_modules/.installed -nt package-lock.json ]; then
    exit 0
fi
command -v npm >/dev/null || sh scripts/apt-install.sh nodejs npm
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
touch node_modules/.installed
