#!/bin/sh
# The real programs the tests talk to, from Debian's packages: SpamAssassin scores every
# kind of mail, dovecot is the IMAP server the bounce-mailbox poller reads, PostgreSQL is
# the production database (the tests start a throwaway cluster of their own), nginx is
# the reverse proxy of deploy/start.sh, and Compose resolves docker-compose.yml (Debian's
# docker-compose, when no `docker compose` plugin is there). Installed as
# root with apt-get; otherwise the missing ones are named and the tests that need them
# say so.
set -eu
missing=""
command -v spamassassin >/dev/null || missing="$missing spamassassin"
[ -x /usr/sbin/dovecot ] || missing="$missing dovecot-imapd"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
    || missing="$missing docker-compose"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    # No services started by the package scripts: the tests start their own instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    rm -f /usr/sbin/policy-rc.d
else
    echo "Please install:$missing (Debian: apt-get install$missing)" >&2
    exit 1
fi
