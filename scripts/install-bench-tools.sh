#!/bin/sh
# The load generators the benchmarks use, from Debian's packages: wrk for HTTP and
# Postfix's smtp-sink for SMTP. They are C programs, faster than what they measure.
# Installed by apt-install.sh (as root); otherwise the missing ones are named.
set -eu
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
[ -x /usr/sbin/smtp-sink ] || missing="$missing postfix"
[ -z "$missing" ] && exit 0
# Postfix asks how to deliver mail; only its smtp-sink program is used.
if [ "$(id -u)" = 0 ] && command -v debconf-set-selections >/dev/null; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-install.sh" $missing
