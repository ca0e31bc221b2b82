#!/bin/sh
# The load generators the benchmarks use, from Debian's packages: wrk for HTTP and
# Postfix's smtp-sink for SMTP. They are C programs, faster than what they measure.
set -eu
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "Please install:$missing (Debian: apt-get install$missing)" >&2
        exit 1
    fi
fi
