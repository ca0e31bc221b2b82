#!/bin/sh
# The load generators the benchmarks use, from Debian's packages: wrk for HTTP and
# Postfix's smtp-sink for SMTP. They are C programs, faster than what they measure.
# Installed as root with apt-get (Postfix configured as "No configuration" and not
# started: only its smtp-sink program is used); otherwise the missing ones are named.
set -eu
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
[ -x /usr/sbin/smtp-sink ] || missing="$missing postfix"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    rm -f /usr/sbin/policy-rc.d
else
    echo "Please install:$missing (Debian: apt-get install$missing)" >&2
    exit 1
fi
