#!/bin/sh
# Create the virtual environment; on Debian/Ubuntu python3 may lack the venv module.
set -eu
venv="$1"
[ -x "$venv/bin/python" ] && exit 0
if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    else
        echo "python3 cannot create a virtual environment: install the python3-venv package" >&2
        echo "(as root: apt-get install python3-venv) and run this again." >&2
        exit 1
    fi
fi
