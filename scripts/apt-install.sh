#!/bin/sh
# sh scripts/apt-install.sh PACKAGE...: Debian packages the tests or benchmarks use,
# installed as root with apt-get without starting their services (the tests and
# benchmarks start their own instances); otherwise they are named and it exits 1.
set -eu
[ "$#" -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    rm -f /usr/sbin/policy-rc.d
else
    echo "Please install: $* (Debian: apt-get install $*)" >&2
    exit 1
fi
