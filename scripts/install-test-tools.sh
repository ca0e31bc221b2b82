#!/bin/sh
# The real programs the tests talk to, from Debian's packages: SpamAssassin scores every
# kind of mail, dovecot is the IMAP server the bounce-mailbox poller reads, PostgreSQL is
# the production database (the tests start a throwaway cluster of their own), nginx is
# the reverse proxy of deploy/start.sh, and Compose resolves docker-compose.yml (Debian's
# docker-compose, when no `docker compose` plugin is there). Installed by apt-install.sh
# (as root); otherwise the missing ones are named.
set -eu
missing=""
command -v spamassassin >/dev/null || missing="$missing spamassassin"
[ -x /usr/sbin/dovecot ] || missing="$missing dovecot-imapd"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
    || missing="$missing docker-compose"
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-install.sh" $missing
